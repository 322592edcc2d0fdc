"""common/devices.py: what runs on no GPU, one GPU and two, decided on this CPU with the devices
simulated; run directories of either implementation resume under lstm=auto; exports hold no
cuDNN op even when the training chose cuDNN; GPU memory grows and the tests run without TF32."""
import dataclasses
import importlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from common import devices, loop
from common.errors import UserError
from mnist_rnn import configs as mnist_configs
from mnist_rnn import export as mnist_export
from mnist_rnn import model as mnist_model
from mnist_rnn import train as mnist_train
from ptb import configs as ptb_configs
from ptb import export as ptb_export
from ptb import model as ptb_model
from ptb import train as ptb_train
from ptb.model import PTBModel

CPU = devices.Hardware(cpu_bfloat16=True)  # our development machines' CPU
SLOW_CPU = devices.Hardware()              # no AVX-512 BF16 or AMX, nor AVX-512
AVX512_CPU = devices.Hardware(cpu_avx512=True)  # AVX-512 without its BF16
ONE_GPU = devices.Hardware(gpus=((8, 0),), cpu_bfloat16=True)
TWO_GPUS = devices.Hardware(gpus=((9, 0), (9, 0)))
GIVEN = loop.RunOptions(jit_compile_given=True)  # --jit_compile on the command line


def _ptb(hardware, options=loop.RunOptions(), model_dir=None, **fields):
  config = dataclasses.replace(ptb_configs.SmallConfig(), **fields)
  return ptb_train.resolve(config, model_dir, options, hardware)


def _mnist(hardware, options=loop.RunOptions(), model_dir=None, **fields):
  config = dataclasses.replace(mnist_configs.TutorialConfig(), **fields)
  return mnist_train.resolve(config, model_dir, options, hardware)


def _fields(config):
  return config.lstm, config.jit_compile, config.precision


def test_on_a_cpu_the_defaults_are_what_they_were():
  """The fast LSTM; ptb with XLA and bfloat16 matmuls, mnist_rnn without XLA in mixed bfloat16,
  its rows in 2 chains on one thread per op, with the cell op; float32 where bfloat16 is slow."""
  assert _fields(_ptb(CPU)) == ("fast", True, "bfloat16_matmuls")
  assert _fields(_ptb(SLOW_CPU)) == ("fast", True, "float32")
  assert _fields(_mnist(CPU)) == ("fast", False, "mixed_bfloat16")
  assert _fields(_mnist(SLOW_CPU)) == ("fast", False, "float32")
  plan = devices.decide(mnist_configs.TutorialConfig(), CPU,
                        bfloat16_precision="mixed_bfloat16")
  assert (plan.cudnn, plan.row_groups, plan.intra_op_threads, plan.cell_op) == (False, 2, 1, True)
  for cell in ("gru", "rnn"):  # Keras' layers, cuDNN or not, as before
    assert _fields(_ptb(CPU, cell=cell)) == ("fast", True, "bfloat16_matmuls")


def _char(hardware, options=loop.RunOptions(), model_dir=None, **fields):
  config = dataclasses.replace(ptb_configs.CharConfig(), **fields)
  return ptb_train.resolve(config, model_dir, options, hardware)


def test_a_character_model_in_float32_on_a_cpu_runs_its_rows_in_chains_outside_xla():
  """Bound by its recurrence, a character model's float32 step runs faster as chains of rows
  with the cell op on one thread per op than under XLA: that is its default on a CPU without
  fast bfloat16 and with --precision=float32. Where bfloat16 is fast, word models, an XLA the
  user asked for and GPUs keep what they had."""
  recipe = {"hidden_size": 256, "batch_size": 32, "keep_prob": 1.0}  # README's PyTorch recipe
  for config in (_char(SLOW_CPU), _char(CPU, precision="float32"), _char(AVX512_CPU, **recipe)):
    assert _fields(config) == ("fast", False, "float32")
    plan = ptb_model.plan(config, config.precision, config.jit_compile)
    assert (plan.row_groups, plan.cell_op, plan.intra_op_threads) == (ptb_model.ROW_GROUPS,
                                                                     True, 1)
  # Without AVX-512 a chain needs MIN_AVX2_CHAIN_ROWS rows: the recipe's 8 a chain keep XLA.
  assert _fields(_char(SLOW_CPU, **recipe)) == ("fast", True, "float32")
  assert _fields(_char(CPU)) == ("fast", True, "bfloat16_matmuls")
  assert _fields(_char(SLOW_CPU, GIVEN)) == ("fast", True, "float32")
  assert _fields(_char(SLOW_CPU, lstm="reference")) == ("reference", True, "float32")
  assert _fields(_char(ONE_GPU)) == ("keras", False, "float32")
  for model in ("small", "medium"):  # the softmax's share is large: XLA stays
    config = ptb_train.resolve(ptb_configs.get_config(model), None, hardware=SLOW_CPU)
    assert _fields(config) == ("fast", True, "float32")
    assert ptb_model.intra_op_threads(config) == 0
  assert [ptb_model.recurrence_bound(ptb_configs.get_config(name))
          for name in ("small", "medium", "large", "char", "char_large")] == [
              False, False, False, True, True]


def test_a_character_run_resumes_with_the_xla_setting_it_trained_with(tmp_path):
  """A float32 character run started under XLA (before chains were its default) resumes
  under XLA, without a config-mismatch error; one started outside XLA stays outside."""
  for jit_compile in (True, False):
    model_dir = tmp_path / str(jit_compile)
    (model_dir / "checkpoints").mkdir(parents=True)
    started = dataclasses.replace(_char(SLOW_CPU), jit_compile=jit_compile)  # as recorded
    ptb_train.check_config(model_dir, started)
    resumed = _char(SLOW_CPU, model_dir=model_dir)
    assert resumed == started
    ptb_train.check_config(model_dir, resumed)


@pytest.mark.parametrize("gpus", [ONE_GPU, TWO_GPUS], ids=["one_gpu", "two_gpus"])
def test_on_gpus_cudnn_runs_without_xla_in_float32(gpus):
  """keras.layers.LSTM (cuDNN), its steps without XLA, float32 (TF32): one GPU and two alike,
  each of two mirrored replicas running what one GPU runs."""
  assert _fields(_ptb(gpus)) == ("keras", False, "float32")
  assert _fields(_mnist(gpus)) == ("keras", False, "float32")
  for config in (ptb_configs.SmallConfig(), mnist_configs.TutorialConfig()):
    plan = devices.decide(config, gpus)
    assert plan.cudnn and not plan.cell_op and (plan.row_groups, plan.intra_op_threads) == (0, 0)
    assert "lstm keras: auto on a GPU" in plan.describe() and "XLA off" in plan.describe()
  # The GRU takes cuDNN too; SimpleRNN has no cuDNN kernel, so ptb keeps its XLA.
  assert devices.decide(dataclasses.replace(ptb_configs.SmallConfig(), cell="gru"), gpus).cudnn
  rnn = devices.decide(dataclasses.replace(ptb_configs.SmallConfig(), cell="rnn"), gpus)
  assert (rnn.lstm, rnn.cudnn, rnn.jit_compile) == ("keras", False, True)


def test_xla_asked_for_on_a_gpu_keeps_xla_and_never_wraps_cudnn():
  # auto with --jit_compile: the fast LSTM, which XLA compiles.
  assert _fields(_ptb(ONE_GPU, GIVEN)) == ("fast", True, "float32")
  assert _fields(_ptb(ONE_GPU, precision="bfloat16_matmuls")) == (
      "fast", True, "bfloat16_matmuls")  # a precision only XLA runs asks for XLA too
  # An explicit --lstm=keras without --jit_compile: the default XLA goes.
  assert _fields(_ptb(ONE_GPU, lstm="keras")) == ("keras", False, "float32")
  # Both explicit: refused, naming both flags and what to do.
  for resolve in (_ptb, _mnist):
    with pytest.raises(UserError, match="--lstm=keras.*--jit_compile.*--lstm=fast"):
      resolve(ONE_GPU, GIVEN, lstm="keras", jit_compile=True)
  # A precision only XLA runs, with cuDNN: refused, naming the flag that needs XLA.
  with pytest.raises(UserError, match="--precision=bfloat16_matmuls runs only under XLA"):
    _ptb(ONE_GPU, lstm="keras", precision="bfloat16_matmuls")
  # --lstm=fast on a GPU: Keras' GRU runs its own loop (no cuDNN), so XLA can compile it.
  plan = devices.decide(dataclasses.replace(ptb_configs.SmallConfig(), lstm="fast", cell="gru"),
                        ONE_GPU)
  assert (plan.cudnn, plan.jit_compile) == (False, True)
  # A model built for XLA never takes cuDNN's kernels.
  assert not devices.plan(ONE_GPU, "keras", "lstm", jit_compile=True).cudnn


def test_the_log_says_what_runs_and_why(monkeypatch):
  lines = []
  monkeypatch.setattr(ptb_train, "log", lambda fmt, *args: lines.append(fmt % args))
  _ptb(ONE_GPU)
  _ptb(CPU)
  assert lines[0].startswith("on 1 GPU(s): lstm keras: auto on a GPU (cuDNN's kernels); XLA "
                             "off: it cannot compile cuDNN's kernels; precision float32")
  assert lines[1].startswith("on the CPU: lstm fast: auto without a GPU")


@pytest.mark.parametrize("trained", ["fast", "keras"])
@pytest.mark.parametrize("hardware", [CPU, ONE_GPU], ids=["cpu", "gpu"])
def test_a_run_of_either_implementation_resumes_under_auto(trained, hardware, tmp_path):
  """config.json records what auto chose; a run trained with lstm=fast or keras resumes under
  the default auto (which keeps the implementation), without a config-mismatch error."""
  for name, resolve, check_config in (("ptb", _ptb, ptb_train.check_config),
                                      ("mnist_rnn", _mnist, loop.check_config)):
    model_dir = tmp_path / name
    (model_dir / "checkpoints").mkdir(parents=True)
    started = resolve(hardware, lstm=trained)  # as that run's train_and_evaluate resolved it
    (model_dir / "config.json").write_text(json.dumps(dataclasses.asdict(started)))
    resumed = resolve(hardware, model_dir=model_dir)  # lstm=auto, the new default
    assert resumed == started, name
    check_config(model_dir, resumed)  # no config-mismatch error


def test_an_old_run_without_a_recorded_lstm_resumes_as_fast(tmp_path):
  old = {k: v for k, v in dataclasses.asdict(_ptb(CPU)).items() if k != "lstm"}
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(json.dumps(old))
  assert _ptb(ONE_GPU, model_dir=tmp_path).lstm == "fast"  # what every run had then


def _op_types(export_dir):
  """Every op type in a SavedModel's graph and its functions."""
  saved_model = saved_model_pb2.SavedModel()
  saved_model.ParseFromString((export_dir / "saved_model.pb").read_bytes())
  graph = saved_model.meta_graphs[0].graph_def
  nodes = list(graph.node) + [node for function in graph.library.function
                              for node in function.node_def]
  return {node.op for node in nodes}


def _graph_op_types(function, *args):
  graph = tf.function(function).get_concrete_function(*args).graph
  ops = {op.type for op in graph.get_operations()}
  for inner in graph._functions.values():  # pylint: disable=protected-access
    ops |= {node.op for node in inner.definition.node_def}
  return ops


@pytest.fixture
def a_gpu(monkeypatch):
  """This CPU taken for one GPU: common.devices sees one, and Keras' cuDNN check passes, so
  Keras' LSTM and GRU layers trace cuDNN's op (which a CPU cannot run: trace, never run)."""
  monkeypatch.setattr(devices, "visible", lambda: ONE_GPU)
  # The module (the package's `rnn` is the function of the same name).
  keras_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
  monkeypatch.setattr(keras_rnn, "_is_gpu_available", lambda: True)


def _cudnn(ops):
  return sorted(op for op in ops if op.startswith("Cudnn"))


def test_ptb_export_holds_no_cudnn_op_when_training_ran_cudnn(a_gpu, tmp_path):
  config = dataclasses.replace(ptb_train.resolve(ptb_configs.TestConfig(), None),
                               vocab_size=5, hidden_size=4, num_layers=2)
  assert (config.lstm, config.jit_compile) == ("keras", False)  # as the GPU decision builds it
  keras.utils.set_random_seed(0)
  model = PTBModel(config, config.precision, config.jit_compile)
  model.create_variables()
  assert model.cudnn
  ids, state = tf.zeros([2, 3], tf.int32), model.zero_state(2)
  assert _cudnn(_graph_op_types(model, ids, state))  # the training step would run cuDNN
  vocab = ["<unk>", "<eos>", "a", "b", "c"]
  ptb_export.export(model, vocab, tmp_path / "export")
  ops = _op_types(tmp_path / "export")
  assert not _cudnn(ops) and {"While", "StatelessWhile"} & ops  # Keras' own loop
  assert model.lstm_0.layer.use_cudnn == "auto"  # training's setting is back
  exported = tf.saved_model.load(str(tmp_path / "export"))  # serves on this CPU
  out = exported.signatures["score"](sentences=tf.constant(["a b c", "b"]))
  want = PTBModel(dataclasses.replace(config, lstm="fast"), "float32")
  want.create_variables()
  want.set_weights(model.get_weights())
  logits, _ = want(tf.constant([[1, 2, 3, 4]]), want.zero_state(1))
  log_probs = tf.nn.log_softmax(logits[0])
  expected = sum(float(log_probs[t, token]) for t, token in enumerate([2, 3, 4, 1]))
  np.testing.assert_allclose(out["log_prob"][0], expected, rtol=1e-5)


def test_mnist_export_holds_no_cudnn_op_when_training_ran_cudnn(a_gpu, tmp_path):
  config = dataclasses.replace(mnist_train.resolve(mnist_configs.TestConfig(), None),
                               hidden_size=4, bidirectional=True, num_layers=2)
  assert (config.lstm, config.jit_compile, config.precision) == ("keras", False, "float32")
  keras.utils.set_random_seed(0)
  model = mnist_model.build_model(config)
  images = tf.zeros([2, 28, 28])
  assert _cudnn(_graph_op_types(model, images))
  mnist_export.export(model, tmp_path / "export")
  assert not _cudnn(_op_types(tmp_path / "export"))
  exported = tf.saved_model.load(str(tmp_path / "export"))
  pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28), np.uint8)
  out = exported.signatures["serving_default"](images=tf.constant(pixels))
  want = tf.nn.softmax(model(tf.constant(pixels, tf.float32) / 255.0)).numpy()
  np.testing.assert_allclose(out["probabilities"], want, atol=1e-6)


def test_seq2seq_export_holds_no_cudnn_op(a_gpu, tmp_path):
  from seq2seq import configs as seq2seq_configs  # pylint: disable=import-outside-toplevel
  from seq2seq import data as seq2seq_data  # pylint: disable=import-outside-toplevel
  from seq2seq import export as seq2seq_export  # pylint: disable=import-outside-toplevel
  from seq2seq.model import Seq2Seq  # pylint: disable=import-outside-toplevel
  config = seq2seq_configs.TestConfig()
  vocab = seq2seq_data.Vocabulary(list(seq2seq_data.RESERVED) + list("abcdef"), "char")
  keras.utils.set_random_seed(0)
  model = Seq2Seq(config, source_vocab_size=len(vocab), target_vocab_size=len(vocab))
  source = tf.constant([[4, 5, 6, 0]])
  model((source, tf.constant([[2, 4, 5]])))
  assert _cudnn(_graph_op_types(lambda s: model.encode(s)[0], source))
  seq2seq_export.export(model, (vocab, vocab), config, tmp_path / "export")
  assert not _cudnn(_op_types(tmp_path / "export"))


def test_memory_growth_for_every_gpu_and_tf32_off_only_when_asked(monkeypatch):
  gpus = ["GPU:0", "GPU:1"]
  grown, tf32 = [], []
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus)
  monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                      lambda gpu, on: grown.append((gpu, on)))
  monkeypatch.setattr(tf.config.experimental, "enable_tensor_float_32_execution", tf32.append)
  monkeypatch.delenv(devices.NO_TF32, raising=False)
  devices.prepare_gpus()
  assert grown == [("GPU:0", True), ("GPU:1", True)] and tf32 == []  # training keeps TF32
  monkeypatch.setenv(devices.NO_TF32, "1")  # as tests/conftest.py sets it
  devices.prepare_gpus()
  assert tf32 == [False]


def test_the_gap_experiments_xla_steps_never_take_cudnn(monkeypatch):
  from mnist_rnn import gap_experiment  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(devices, "visible", lambda: ONE_GPU)
  for cell in ("gru", "lstm", "chrono"):
    assert gap_experiment.recurrent_layer(cell, 4).use_cudnn is False, cell
