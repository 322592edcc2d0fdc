"""common/lstm_cell.cc: built once, the numbers of TensorFlow's ops, and never in an export."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2

from common import cell_op
from common.lstm import LSTM
from conftest import require_cell_op
from mnist_rnn import configs as mnist_configs
from mnist_rnn import export as mnist_export
from mnist_rnn import model as mnist_model
from mnist_rnn import train as mnist_train

UNITS = 8


def edge_values():
  """[16, 4 units] gate inputs over float32's range: 0, tiny, ordinary and huge values of
  both signs, infinities, and the neighbourhood of 0.0625 where our tanh changes formula."""
  values = np.concatenate([[0.0, 1e-30, 1e-7, 1e-3, 0.0625, 0.06249, 0.06251, 0.5, 1.0, 3.0,
                            9.0, 20.0, 87.0, 88.5, 1e4, np.inf],
                           np.random.default_rng(0).normal(0, 4, 48)]).astype(np.float32)
  values = np.concatenate([values, -values]).reshape(-1, UNITS)  # [16, UNITS]
  return tf.constant(np.concatenate([values] * 4, axis=-1))  # every gate sees every value


def forward(projected, recurrent=None, c_prev=None):
  library = cell_op.load()
  rows = projected.shape[0]
  recurrent = tf.zeros_like(projected) if recurrent is None else recurrent
  c_prev = tf.zeros([rows, UNITS]) if c_prev is None else c_prev
  return library.lstm_cell_forward(projected, recurrent, c_prev)


def test_activations_equal_tensorflows_over_the_whole_float_range():
  require_cell_op()
  gates = edge_values()
  c_prev = tf.random.stateless_normal([gates.shape[0], UNITS], seed=[1, 2]) * 5
  h, h_matmul, c, activations, tanh_c = forward(gates, c_prev=c_prev)
  i, f, g, o = tf.split(gates, 4, axis=-1)
  want = tf.concat([tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)], axis=-1)
  # Measured: at most 1.2e-7 apart here and 3e-7 over a dense grid of [-20, 20] (a rounding
  # or two of a value near 1); tanh to 2.4e-7 of its own size here, also near 0. A wrong
  # formula or branch is off by far more.
  np.testing.assert_allclose(activations, want, rtol=3e-7, atol=2e-7)
  tanh_g = activations[:, 2 * UNITS:3 * UNITS]  # and near 0, relative to their own size
  np.testing.assert_allclose(tanh_g, want[:, 2 * UNITS:3 * UNITS], rtol=2e-6, atol=1e-37)
  want_c = tf.sigmoid(f) * c_prev + tf.sigmoid(i) * tf.tanh(g)
  np.testing.assert_allclose(c, want_c, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(tanh_c, tf.tanh(c), rtol=3e-7, atol=2e-7)
  np.testing.assert_allclose(h, tf.sigmoid(o) * tf.tanh(c), rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(h_matmul, h)  # float32 matmuls: the same tensor


def test_bfloat16_outputs_round_like_tensorflows_cast():
  """h and the gates' gradient for bfloat16 matmuls are rounded to nearest even, as tf.cast
  rounds them, exact ties and NaN included."""
  require_cell_op()
  library = cell_op.load()
  gates = edge_values()
  h, h_matmul, *_ = forward(gates, tf.zeros_like(gates, tf.bfloat16),
                            tf.random.stateless_normal([gates.shape[0], UNITS], seed=[3, 4]))
  assert h_matmul.dtype == tf.bfloat16
  np.testing.assert_array_equal(tf.bitcast(h_matmul, tf.uint16),
                                tf.bitcast(tf.cast(h, tf.bfloat16), tf.uint16))
  # With o = 0.5, tanh(c) = 1 and dh = 4x, the output gate's gradient is exactly x: here
  # values halfway between two bfloat16s (the dropped 16 bits 0x8000), after an even and an
  # odd neighbour in turn, and a NaN.
  ties = np.arange(0x3F808000, 0x3F808000 + UNITS * 2 ** 16, 2 ** 16, dtype=np.uint32)
  x = tf.bitcast(tf.constant(ties), tf.float32).numpy()
  x[-1] = np.nan
  zeros = tf.zeros([1, UNITS])
  d_gates, *_ = library.lstm_cell_backward(
      tf.fill([1, 4 * UNITS], 0.5), zeros, tf.ones([1, UNITS]), tf.zeros([1, UNITS], tf.bfloat16),
      tf.constant(4 * x[None]), zeros, tf.zeros([4 * UNITS]))
  got = tf.bitcast(d_gates[0, 3 * UNITS:], tf.uint16).numpy()
  want = tf.bitcast(tf.cast(x, tf.bfloat16), tf.uint16).numpy()
  np.testing.assert_array_equal(got[:-1], want[:-1])
  assert (got[:-1] % 2 == 0).all()  # the even neighbour, up or down
  assert np.isnan(tf.cast(d_gates[0, -1], tf.float32))


def test_nan_stays_nan_in_its_own_row():
  """A diverged step must show as NaN (the training loop stops on a non-finite loss), not as
  a clamped, plausible number."""
  require_cell_op()
  gates = np.zeros([2, 4 * UNITS], np.float32)
  gates[1, [0, UNITS, 2 * UNITS, 3 * UNITS]] = np.nan  # i, f, g, o of row 1's first unit
  h, _, c, activations, _ = forward(tf.constant(gates), c_prev=tf.ones([2, UNITS]))
  assert np.isnan(activations[1, ::UNITS]).all() and np.isnan([h[1, 0], c[1, 0]]).all()
  assert np.isfinite(h[0]).all() and np.isfinite(h[1, 1:]).all()


@pytest.mark.slow
def test_the_library_is_built_once_per_cpu_and_tensorflow(tmp_path, monkeypatch):
  require_cell_op()
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  compiler = os.environ.get("CXX") or "g++"
  path = cell_op.build(compiler)
  assert path.parent == tmp_path / "rnn_tutorials" / "ops" and path.exists()
  built = path.stat().st_mtime_ns
  assert cell_op.build(compiler) == path and path.stat().st_mtime_ns == built  # not rebuilt
  assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
  copy = tmp_path / "another_checkout" / "lstm_cell.cc"
  copy.parent.mkdir()
  copy.write_text(cell_op.SOURCE.read_text())
  monkeypatch.setattr(cell_op, "SOURCE", copy)
  assert cell_op.library_path(compiler) == path  # the same source elsewhere: no new build
  monkeypatch.setattr(cell_op, "_cpu", lambda: "another CPU")
  assert cell_op.library_path(compiler) != path  # -march=native code is for this CPU only


def test_without_a_compiler_one_warning_says_so(tmp_path, monkeypatch):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  monkeypatch.setenv("CXX", "no-such-compiler")
  warnings = _load(monkeypatch)
  assert len(warnings) == 1 and "no C++ compiler 'no-such-compiler' on the PATH" in warnings[0]
  assert "TensorFlow's ops" in warnings[0]


def test_a_compile_error_is_one_warning_with_the_compilers_error_line(tmp_path, monkeypatch):
  require_cell_op()
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  source = tmp_path / "lstm_cell.cc"
  source.write_text("this is not C++;\n")
  monkeypatch.setattr(cell_op, "SOURCE", source)
  warnings = _load(monkeypatch)
  assert len(warnings) == 1 and "failed" in warnings[0] and "error" in warnings[0], warnings
  assert not list((tmp_path / "rnn_tutorials" / "ops").iterdir())  # no half-built library left


def _load(monkeypatch):
  """Runs a fresh `cell_op.load()`, which must return None; returns the warnings it logged."""
  warnings = []
  monkeypatch.setattr(logging, "warning", lambda message, *args: warnings.append(message % args))
  assert cell_op.load.__wrapped__() is None
  return warnings


def test_mnist_trains_with_the_op_and_exports_without_it(tmp_path):
  """The default train step runs the op; the SavedModel holds none of it, so it loads where
  the library is not built (tests/test_mnist_predict.py loads one in a fresh process)."""
  require_cell_op()
  config = dataclasses.replace(mnist_configs.TestConfig(), precision="mixed_bfloat16")
  assert mnist_model.uses_cell_op(config)
  assert not mnist_model.uses_cell_op(dataclasses.replace(config, jit_compile=True))
  assert not mnist_model.uses_cell_op(dataclasses.replace(config, cell_op=False))
  assert not mnist_model.uses_cell_op(dataclasses.replace(config, precision="mixed_float16"))
  model = mnist_model.build_model(config)
  train_step = tf.function(mnist_train.make_train_step(model, mnist_train.make_optimizer(config)))
  images = tf.zeros([config.batch_size, 28, 28])
  labels = tf.zeros([config.batch_size], tf.int64)
  graph = train_step.get_concrete_function(images, labels).graph.as_graph_def()
  assert {"LstmCellForward", "LstmCellBackward"} <= _op_types(graph)
  mnist_export.export(model, tmp_path / "export")
  saved = saved_model_pb2.SavedModel()
  saved.ParseFromString((tmp_path / "export" / "saved_model.pb").read_bytes())
  assert not {"LstmCellForward", "LstmCellBackward"} & _op_types(saved.meta_graphs[0].graph_def)


def test_where_a_gpu_is_visible_the_layer_uses_tensorflows_ops(monkeypatch):
  """The op has CPU kernels only: on a GPU machine it would pull every step onto the CPU."""
  require_cell_op()
  layer = LSTM(UNITS, "glorot_uniform", "orthogonal", cell_op=True)
  inputs = tf.zeros([2, 3, 5])

  def traced():
    return tf.function(layer).get_concrete_function(inputs).graph.as_graph_def()

  assert "LstmCellForward" in _op_types(traced())
  monkeypatch.setattr(tf.config, "list_physical_devices",
                      lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
  assert "LstmCellForward" not in _op_types(traced())


def _op_types(graph_def):
  return ({node.op for node in graph_def.node} |
          {node.op for function in graph_def.library.function for node in function.node_def})
