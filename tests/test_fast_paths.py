"""The fast paths compute what the reference paths compute, and the benchmarks report it."""
import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import bfloat16
from common.lstm import LSTM
from conftest import assert_clean_error, require_cell_op, run_cli
from mnist_rnn import configs as mnist_configs
from mnist_rnn import model as mnist_model
from mnist_rnn.model import build_model, forward_flops_per_example
from ptb import configs as ptb_configs
from ptb import model as ptb_model
from ptb import train as ptb_train
from ptb.model import PTBModel, forward_flops_per_token


def SLOW(case):  # pylint: disable=invalid-name
  """A parametrized case that runs in the whole suite only (-m slow), not the quick tier."""
  return pytest.param(*case, marks=pytest.mark.slow)


def test_our_lstm_equals_keras_lstm_with_the_same_weights():
  keras.utils.set_random_seed(0)
  inputs = tf.random.normal([3, 7, 5])
  h0, c0 = tf.random.normal([3, 4]), tf.random.normal([3, 4])
  ours = LSTM(4, "glorot_uniform", "orthogonal", forget_bias=1.0)
  outputs, h, c = ours(inputs, h0, c0)
  reference = keras.layers.LSTM(4, return_sequences=True, return_state=True)
  reference(inputs, initial_state=[h0, c0])
  reference.set_weights(ours.get_weights())
  ref_outputs, ref_h, ref_c = reference(inputs, initial_state=[h0, c0])
  np.testing.assert_allclose(outputs, ref_outputs, atol=1e-5)
  np.testing.assert_allclose(h, ref_h, atol=1e-5)
  np.testing.assert_allclose(c, ref_c, atol=1e-5)
  # Variable length (the scoring signature's graph loop) gives the same numbers too.
  dynamic = tf.function(lambda x: ours(x, h0, c0),
                        input_signature=[tf.TensorSpec([3, None, 5], tf.float32)])
  np.testing.assert_allclose(dynamic(inputs)[0], outputs, atol=1e-5)


def test_bfloat16_matmul_and_its_gradients_are_float32_products_of_rounded_inputs():
  """common.bfloat16.matmul: value and both gradients equal float64 products of the
  bfloat16-rounded operands (and upstream gradient), with float32 results of the right shape."""
  a, b = tf.random.stateless_normal([6, 5], [0, 1]), tf.random.stateless_normal([5, 7], [0, 2])
  upstream = tf.random.stateless_normal([6, 7], [0, 3])

  @tf.function(jit_compile=True)
  def value_and_grads(a, b):
    with tf.GradientTape() as tape:
      tape.watch([a, b])
      product = bfloat16.matmul(a, b)
      loss = tf.reduce_sum(product * upstream)
    return (product, *tape.gradient(loss, [a, b]))

  def rounded(x):
    return tf.cast(tf.cast(x, tf.bfloat16), tf.float64).numpy()

  product, da, db = value_and_grads(a, b)
  for got, want in [(product, rounded(a) @ rounded(b)),
                    (da, rounded(upstream) @ rounded(b).T),
                    (db, rounded(a).T @ rounded(upstream))]:
    assert got.dtype == tf.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("state_in_loss", [True, False])  # ptb's loss sees only the outputs
@pytest.mark.parametrize("mode,jit_compile,cell_op,tolerance", [
    # Measured: equal to 1.5e-7 of each gradient's largest element (float32 summation order).
    # 1e-3 leaves room for a gate gradient that the two orders of float32 arithmetic round to
    # neighbouring bfloat16 values (2^-8 apart); a wrong gate or sign is off by O(1).
    ("bfloat16_matmuls", True, False, 1e-3),
    ("float32", True, False, 1e-3),          # ptb's float32 + XLA
    ("float32", False, False, 1e-3),         # without XLA
    ("float32", False, True, 1e-3),          # common.cell_op's op
    # Differentiating the step sums the recurrent kernel's T gradients in bfloat16; the
    # written-out pass sums them inside one matmul (measured: 0.8% of the largest apart).
    ("mixed_bfloat16", False, False, 3e-2),
    ("mixed_bfloat16", False, True, 3e-2),   # mnist_rnn's default
])
def test_lstm_written_out_backward_pass_equals_differentiating_the_step(
    mode, jit_compile, cell_op, tolerance, state_in_loss):
  """The fast LSTM's written-out backward pass gives the gradients that TensorFlow's
  differentiation of the reference step gives, for the inputs, the state and every weight."""
  if cell_op:
    require_cell_op()
  keras.utils.set_random_seed(0)
  inputs, h0, c0 = (tf.random.normal(shape) for shape in ([3, 6, 5], [3, 8], [3, 8]))
  weights = [tf.random.normal(shape) for shape in ([3, 6, 8], [3, 8], [3, 8])]
  policy = "float32" if mode == "bfloat16_matmuls" else mode

  def gradients(implementation):
    layer = LSTM(8, "glorot_uniform", "orthogonal", forget_bias=1.0, cell_op=cell_op,
                 implementation=implementation, bfloat16_matmuls=mode == "bfloat16_matmuls",
                 under_xla=jit_compile, dtype=policy)
    layer(inputs, h0, c0)
    layer.set_weights(start)

    @tf.function(jit_compile=jit_compile)
    def run(inputs, h0, c0):
      with tf.GradientTape() as tape:
        tape.watch([inputs, h0, c0])
        outputs = layer(inputs, h0, c0, training=True)
        used = outputs if state_in_loss else outputs[:1]
        loss = sum(tf.reduce_sum(tf.cast(x, tf.float32) * w) for x, w in zip(used, weights))
      return outputs, tape.gradient(loss, [inputs, h0, c0, *layer.trainable_variables])
    return run(inputs, h0, c0)

  start = [tf.random.normal([5, 32]), tf.random.normal([8, 32]), tf.random.normal([32])]
  outputs, written_out = gradients("fast")
  reference_outputs, reference = gradients("reference")
  for got, want in zip(outputs, reference_outputs):
    if cell_op:  # its exp and tanh differ from TensorFlow's in the last bits (test_cell_op)
      # bfloat16: a last-bit difference in h can round its matmul input to the next bfloat16.
      forward_tolerance = 1e-6 if mode == "float32" else tolerance
      np.testing.assert_allclose(got, want, rtol=0, atol=forward_tolerance * np.abs(want).max())
    else:
      np.testing.assert_array_equal(got, want)
  for got, want in zip(written_out, reference):
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * np.abs(want).max())


def test_lstm_row_groups_give_every_row_the_same_numbers():
  keras.utils.set_random_seed(0)
  inputs = tf.random.normal([7, 6, 5])  # 7 rows: groups of 2, 2 and 3
  h0, c0 = tf.random.normal([7, 4]), tf.random.normal([7, 4])
  results = []
  for row_groups in (1, 3):
    keras.utils.set_random_seed(1)
    layer = LSTM(4, "glorot_uniform", "orthogonal", row_groups=row_groups)
    with tf.GradientTape() as tape:
      outputs, h, c = layer(inputs, h0, c0)
      loss = tf.reduce_sum(outputs ** 2) + tf.reduce_sum(h * c)
    results.append([outputs, h, c, *tape.gradient(loss, layer.trainable_variables)])
  for one_group, three_groups in zip(*results):
    np.testing.assert_allclose(three_groups, one_group, rtol=1e-5, atol=1e-6)


PTB_TINY = dataclasses.replace(ptb_configs.SmallConfig(), vocab_size=300, hidden_size=32,
                               num_steps=5, batch_size=4)


def _ptb_model(precision="float32", lstm="fast", jit_compile=False, **fields):
  keras.utils.set_random_seed(0)
  model = PTBModel(dataclasses.replace(PTB_TINY, lstm=lstm, **fields), precision, jit_compile)
  model.create_variables()
  return model


def _ptb_run(precision, jit_compile, steps=5, lstm="fast", **fields):
  model = _ptb_model(precision, lstm, jit_compile, **fields)
  model.set_weights(_ptb_model().get_weights())  # keras.layers.LSTM: the same weights
  train_step, eval_step = ptb_train.make_steps(model, model.config, jit_compile)
  rng = np.random.default_rng(0)
  state, losses = model.zero_state(4), []
  for _ in range(steps):
    ids = rng.integers(0, 300, (4, 6), dtype=np.int32)
    nll, state = train_step(ids[:, :-1], ids[:, 1:], state, tf.constant(1.0), tf.constant([0, 0]))
    losses.append(float(nll))
  # One row evaluated (the batch-1 test), fewer rows than the chains: a chain for the row.
  nll, _ = eval_step(ids[:1, :-1], ids[:1, 1:], state[:, :, :1])
  losses.append(float(nll))
  return np.array(losses), state.numpy()


@pytest.mark.parametrize("precision,jit_compile,lstm,rtol,state_atol", [
    # the written-out passes in ptb.model.ROW_GROUPS chains of rows with the cell op (the
    # default outside XLA on a CPU), and in one chain on TensorFlow's ops
    ("float32", False, "fast", 1e-5, 1e-5),
    ("float32", False, "fast-one-chain", 1e-5, 1e-5),
    ("float32", True, "fast", 1e-4, 1e-4),         # XLA: the same float32 maths, fused
    # float32 logits from bfloat16 inputs: the loss as float32's (measured 1.4e-6), the state
    # through 4 updates of bfloat16-rounded softmax gradients (3.7e-4)
    ("bfloat16_matmuls", True, "fast", 1e-5, 2e-3),
    ("mixed_bfloat16", False, "fast", 1e-2, 2e-2),   # bfloat16 matmuls: 8 mantissa bits
    SLOW(("mixed_bfloat16", True, "fast", 1e-2, 2e-2)),
    ("float32", True, "reference", 1e-4, 1e-4),
    ("float32", False, "keras", 1e-5, 1e-5),       # keras.layers.LSTM (cuDNN on GPU)
    SLOW(("float32", True, "keras", 1e-4, 1e-4)),
])
def test_ptb_fast_paths_match_the_float32_reference(precision, jit_compile, lstm, rtol,
                                                     state_atol):
  """Every path trains as --lstm=reference in float32 without XLA (TensorFlow's autodiff
  of the readable LSTM and TensorFlow's cross entropy) does."""
  reference_losses, reference_state = _ptb_run("float32", False, lstm="reference")
  fields = {}
  if lstm == "fast-one-chain":
    lstm, fields = "fast", {"row_groups": 1, "cell_op": False}
  elif lstm == "fast" and not jit_compile and precision in ("float32", "mixed_bfloat16"):
    require_cell_op()
    plan = ptb_model.plan(PTB_TINY, precision, jit_compile)
    assert (plan.row_groups, plan.cell_op, plan.intra_op_threads) == (ptb_model.ROW_GROUPS,
                                                                     True, 1)
  losses, state = _ptb_run(precision, jit_compile, lstm=lstm, **fields)
  np.testing.assert_allclose(losses, reference_losses, rtol=rtol)
  np.testing.assert_allclose(state, reference_state, atol=state_atol)


# Weights after 4 Adam steps from the same start: float32 summation order alone moves them
# by up to 1.3e-6 (measured, the reference on TensorFlow's ops against XLA or Keras' LSTM):
# Adam scales each step to about the learning rate whatever the gradient, so a near-zero
# gradient's last bits show. A wrong gate or sign is off by about the rate, 1e-3.
@pytest.mark.parametrize("overrides,rtol,weights_atol", [
    SLOW(({"lstm": "keras"}, 1e-4, 3e-6)),               # keras.layers.LSTM
    SLOW(({"lstm": "reference", "jit_compile": True}, 1e-4, 3e-6)),
    ({"row_groups": 1, "cell_op": False}, 1e-5, 3e-6),   # the written-out passes
    SLOW(({"row_groups": 1, "cell_op": False, "jit_compile": True}, 1e-4, 3e-6)),
    # Adam moves each weight by about the learning rate whatever the gradient's size, so
    # bfloat16's rounding of small gradients shows in the weights as much as anything would:
    # only the losses are compared.
    SLOW(({"precision": "mixed_bfloat16", "row_groups": 1, "cell_op": False}, 2e-2, None)),
    SLOW(({"row_groups": 3, "cell_op": False}, 1e-5, 3e-6)),   # rows 5 + 5 + 6
    SLOW(({"row_groups": 1, "cell_op": True}, 1e-5, 3e-6)),    # common/lstm_cell.cc
    ({"precision": "mixed_bfloat16", "row_groups": 2, "cell_op": True}, 2e-2, None),  # default
])
def test_mnist_fast_paths_match_the_reference(overrides, rtol, weights_atol):
  from mnist_rnn import train as mnist_train  # pylint: disable=import-outside-toplevel
  if overrides.get("cell_op"):
    require_cell_op()
  # The reference: the readable LSTM differentiated by TensorFlow, float32, no XLA.
  base = dataclasses.replace(mnist_configs.TutorialConfig(), hidden_size=32, batch_size=16,
                             precision="float32", lstm="reference")
  rng = np.random.default_rng(0)
  batches = [(tf.constant(rng.random((16, 28, 28)), tf.float32),
              tf.constant(rng.integers(0, 10, 16))) for _ in range(4)]
  weights = build_model(base).get_weights()  # both variants start from the same weights

  def run(config):
    model = build_model(config)
    model.set_weights(weights)
    optimizer = mnist_train.make_optimizer(config)
    step = tf.function(mnist_train.make_train_step(model, optimizer),
                       jit_compile=config.jit_compile)
    return np.array([float(step(x, y)["loss"]) for x, y in batches]), model.get_weights()

  losses, final_weights = run(dataclasses.replace(base, **{"lstm": "fast", **overrides}))
  reference_losses, reference_weights = run(base)
  np.testing.assert_allclose(losses, reference_losses, rtol=rtol)
  if weights_atol is not None:
    for got, want in zip(final_weights, reference_weights):
      np.testing.assert_allclose(got, want, atol=weights_atol)


def test_mnist_ops_get_one_thread_only_where_row_groups_keep_the_cores_busy(monkeypatch):
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # a CPU
  tutorial = mnist_configs.TutorialConfig()
  assert mnist_model.intra_op_threads(tutorial) == 1  # 2 row groups on a CPU
  for overrides in ({"row_groups": 1}, {"jit_compile": True}, {"lstm": "keras"},
                    {"lstm": "reference"}, {"cell": "gru"}):
    assert mnist_model.intra_op_threads(dataclasses.replace(tutorial, **overrides)) == 0
  assert mnist_model.intra_op_threads(dataclasses.replace(tutorial, row_groups=3)) == 1


def test_flop_counts_equal_the_hand_counts():
  # ptb small, per word: 2 layers x (input 2*200*800 + recurrent 2*200*800) + softmax 2*200*10000
  assert forward_flops_per_token(ptb_configs.SmallConfig()) == 2 * (320_000 + 320_000) + 4_000_000
  # mnist tutorial, per image: 28 x (2*28*512 + 2*128*512) + dense 2*128*10
  assert (forward_flops_per_example(mnist_configs.TutorialConfig())
          == 28 * (28_672 + 131_072) + 2_560)


BENCHMARK_FIELDS = {"app", "config", "device", "precision", "jit_compile", "unit",
                    "train_flops_per_step", "eval_flops_per_step",
                    "peak_float32_matmul_flops_per_second", "train", "eval"}
RATE_FIELDS = {"per_second_median", "per_second_min", "per_second_max", "ms_per_step",
               "achieved_flops_per_second", "utilisation"}


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ["ptb.benchmark", "--model=test", "--steps=2", "--repeats=2", "--compare"],
    ["mnist_rnn.benchmark", "--config=test", "--steps=2", "--repeats=2", "--compare"],
])
def test_benchmarks_print_json_with_every_field(command):
  result = run_cli(*command)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout)
  assert BENCHMARK_FIELDS <= set(report)
  for split in ("train", "eval"):
    assert RATE_FIELDS <= set(report[split])
    assert report[split]["per_second_median"] > 0 and 0 < report[split]["utilisation"] < 1.5
  assert report["train_flops_per_step"] == 3 * report["eval_flops_per_step"]
  if command[0] == "mnist_rnn.benchmark":  # the threads per op mnist_rnn.main would pick
    config = dataclasses.replace(mnist_configs.TestConfig(), precision=report["precision"])
    assert report["intra_op_threads"] == mnist_model.intra_op_threads(config)
    assert report["cell_op"] == mnist_model.uses_cell_op(config)  # what train would run
  if "--compare" in command and command[0] == "mnist_rnn.benchmark":
    assert report["compare"]["fit_baseline"]["speedup"] == 1.0
    assert {"float32", "bfloat16", "bfloat16_tensorflow_ops", "bfloat16_one_row_group",
            "keras_lstm_loop"} <= set(report["compare"])
  elif "--compare" in command:
    assert report["compare"]["keras_baseline"]["speedup"] == 1.0
    assert {"float32", "float32_xla", "bfloat16_matmuls_xla", "bfloat16", "bfloat16_xla",
            "keras_lstm"} <= set(report["compare"])


@pytest.mark.slow
def test_ptb_benchmark_times_another_shape_of_a_config():
  """The character recipe's shape, as PERFORMANCE.md times it against PyTorch's."""
  result = run_cli("ptb.benchmark", "--model=test", "--hidden_size=6", "--batch_size=3",
                   "--num_steps=4", "--keep_prob=1", "--steps=2", "--repeats=1")
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout)
  shape = {name: report["config"][name]
           for name in ("hidden_size", "batch_size", "num_steps", "keep_prob")}
  assert shape == {"hidden_size": 6, "batch_size": 3, "num_steps": 4, "keep_prob": 1.0}
  assert report["train_flops_per_step"] == 3 * 3 * 4 * ptb_model.forward_flops_per_token(
      ptb_configs.get_config("test", hidden_size=6))


@pytest.mark.slow
def test_ptb_benchmark_times_the_step_ptb_train_runs_by_default():
  """No flags: the precision and XLA setting of a default `ptb.main` run, as the JSON says."""
  result = run_cli("ptb.benchmark", "--model=test", "--steps=2", "--repeats=2")
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout)
  default = ptb_train.resolve(ptb_configs.TestConfig(), None)  # as ptb.main decides here
  assert (report["lstm"], report["jit_compile"], report["precision"]) == (
      default.lstm, default.jit_compile, default.precision)
  assert_clean_error(run_cli("ptb.benchmark", "--model=test", "--precision=bfloat16_matmuls",
                             "--nojit_compile"), "--precision=bfloat16_matmuls", "--jit_compile")


@pytest.mark.slow
def test_benchmarked_train_steps_train():
  """The timed train step is a whole step: repeated on one batch, it lowers the loss."""
  from mnist_rnn import benchmark as mnist_benchmark  # pylint: disable=import-outside-toplevel
  from ptb import benchmark as ptb_benchmark  # pylint: disable=import-outside-toplevel
  all_losses = []
  for precision in ("float32", "bfloat16_matmuls"):
    ptb_step, _ = ptb_benchmark.our_steps(PTB_TINY, precision, jit_compile=True)
    all_losses.append([float(ptb_step()[0]) for _ in range(4)])
  mnist_config = dataclasses.replace(mnist_configs.TestConfig(), precision="float32")
  mnist_step, _ = mnist_benchmark.our_steps(mnist_config)
  all_losses.append([float(mnist_step()["loss"]) for _ in range(4)])
  for losses in all_losses:
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses


def test_auto_precision_follows_the_hardware():
  from common import devices, precision  # pylint: disable=import-outside-toplevel
  fast_cpu, slow_cpu = devices.Hardware(cpu_bfloat16=True), devices.Hardware()
  gpu = devices.Hardware(gpus=((8, 0),), cpu_bfloat16=True)
  assert [precision.resolve("auto", hardware) for hardware in (fast_cpu, slow_cpu, gpu)] == [
      "mixed_bfloat16", "float32", "float32"]  # a GPU: float32, run as TF32
  expected = "mixed_bfloat16" if devices.visible().cpu_bfloat16 else "float32"
  assert precision.resolve("auto") == expected or devices.visible().gpus
  for explicit in ("float32", "mixed_bfloat16", "mixed_float16"):
    assert precision.resolve(explicit, gpu) == explicit
  # ptb: the float32 model with the bfloat16 softmax, which needs XLA.
  assert ptb_model.resolve_precision("auto", True, fast_cpu) == "bfloat16_matmuls"
  for hardware in (fast_cpu, slow_cpu, gpu):
    assert ptb_model.resolve_precision("auto", jit_compile=False, hardware=hardware) == "float32"
  assert ptb_model.resolve_precision("auto", True, slow_cpu) == "float32"
  assert ptb_model.resolve_precision("auto", True, gpu) == "float32"  # never float16 for SGD


def test_ptb_keras_lstm_starts_like_ours():
  """Uniform weights in [-init_scale, init_scale] and zero biases (forget bias 0) both ways."""
  for lstm in ("fast", "keras"):
    weights = _ptb_model(lstm=lstm).lstms[0].get_weights()
    kernel, recurrent_kernel, bias = weights
    for matrix in (kernel, recurrent_kernel):
      assert 0.9 * PTB_TINY.init_scale < np.abs(matrix).max() <= PTB_TINY.init_scale
    np.testing.assert_array_equal(bias, 0.0)


@pytest.mark.slow
def test_ptb_trains_and_exports_the_same_with_keras_lstm(ptb_slice, tmp_path):
  """--lstm=keras (keras.layers.LSTM, cuDNN on GPU): the same run, the same export."""
  scores = []
  for flag in ("--lstm=fast", "--lstm=keras"):
    model_dir = tmp_path / flag
    result = run_cli("ptb.main", "--model=test", f"--data_dir={ptb_slice}",
                     f"--model_dir={model_dir}", "--hidden_size=16", flag,
                     "--precision=float32")  # keras.layers.LSTM has no bfloat16_matmuls
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    exported = tf.saved_model.load(str(model_dir / "export"))
    out = exported.signatures["score"](sentences=tf.constant(["the company said it"]))
    scores.append((metrics["test_perplexity"], float(out["log_prob"][0])))
  np.testing.assert_allclose(scores[1], scores[0], rtol=1e-5)
