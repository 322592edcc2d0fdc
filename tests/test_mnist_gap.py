"""mnist_rnn.gap: the gap data, the gradient-norm measurement, the cells, the sweep end to end."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from common.errors import UserError
from conftest import assert_clean_error, run_cli
from mnist_rnn import gap_experiment
from mnist_rnn.gap_experiment import GapConfig

TINY = ("--cells=rnn,lstm", "--gaps=0,3", "--train_steps=3", "--hidden_size=4", "--batch_size=4")
RUN_FIELDS = {"cell", "gap", "test_accuracy", "test_loss", "train_steps", "seconds",
              "grad_norms_init", "grad_norms_trained", "config"}


def event_values(log_dir):
  """{tag: [(step, value), ...]} from the TensorBoard event files directly in `log_dir`."""
  values = {}
  for path in log_dir.glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        values.setdefault(value.tag, []).append((event.step, tf.make_ndarray(value.tensor)))
  return values


def test_gap_batches_append_zero_rows_and_keep_each_label_with_its_image():
  images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
  labels = np.arange(6, dtype=np.uint8)  # label i is image i, to check the pairs
  in_order = list(gap_experiment.gap_batches(images, labels, gap=5, batch_size=4))
  assert [tuple(x.shape) for x, _ in in_order] == [(4, 33, 28), (2, 33, 28)]
  sequences = np.concatenate([x.numpy() for x, _ in in_order])
  np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in in_order]), labels)
  np.testing.assert_allclose(sequences[:, :28], images / 255.0, rtol=1e-6)
  assert not sequences[:, 28:].any()
  # Training: shuffled, repeated, full batches only, every image still with its own label.
  for x, y in gap_experiment.gap_batches(images, labels, gap=2, batch_size=4, seed=1).take(3):
    assert x.shape == (4, 30, 28) and y.dtype == tf.int64
    np.testing.assert_allclose(x[:, :28], images[y.numpy()] / 255.0, rtol=1e-6)
    assert not x[:, 28:].numpy().any()


@pytest.mark.parametrize("w", [0.5, -0.8, 1.25])
def test_gradient_norms_of_a_linear_one_unit_rnn_shrink_as_w_to_the_distance(w):
  steps, features = 7, 3
  inputs = keras.Input((steps, features))
  rnn = keras.layers.SimpleRNN(1, activation=None, use_bias=False)
  dense = keras.layers.Dense(2)
  model = keras.Model(inputs, dense(rnn(inputs)))
  rnn.set_weights([np.ones((features, 1)), np.array([[w]])])  # h_t = w h_{t-1} + sum(x_t)
  dense.set_weights([np.array([[1.0, -1.0]]), np.zeros(2)])  # logits [h, -h]
  x = np.random.default_rng(0).normal(size=(5, steps, features)).astype(np.float32)
  labels = np.array([0, 1, 1, 0, 1])

  norms = gap_experiment.input_gradient_norms(model, x, labels)

  # By hand: h_T = sum_t w^(T-1-t) sum(x_t), dL/dh = (p0 - y0) - (p1 - y1), and
  # dL/dx_t = dL/dh w^(T-1-t) (1, 1, 1): at distance k, |dL/dh| |w|^k sqrt(3).
  h = sum(w ** (steps - 1 - t) * x[:, t].sum(-1).astype(np.float64) for t in range(steps))
  p = np.exp(np.stack([h, -h], -1)) / np.exp(np.stack([h, -h], -1)).sum(-1, keepdims=True)
  y = np.eye(2)[labels]
  at_end = np.mean(np.abs((p[:, 0] - y[:, 0]) - (p[:, 1] - y[:, 1]))) * np.sqrt(features)
  assert norms.shape == (steps,)
  np.testing.assert_allclose(norms, at_end * np.abs(w) ** np.arange(steps), rtol=1e-5)
  np.testing.assert_allclose(norms[1:] / norms[:-1], abs(w), rtol=1e-5)


def test_irnn_starts_with_identity_recurrence_zero_bias_and_carries_the_gradient():
  model = gap_experiment.build_model("irnn", hidden_size=6)
  cell = model.get_layer("irnn").cell
  np.testing.assert_array_equal(cell.recurrent_kernel.numpy(), np.eye(6))
  np.testing.assert_array_equal(cell.bias.numpy(), np.zeros(6))
  assert cell.activation is keras.activations.relu
  # Over blank rows the identity carries the state, so the gradient reaches back undiminished.
  inputs = gap_experiment.add_gap(tf.random.uniform([4, 28, 28]), 10)
  norms = gap_experiment.input_gradient_norms(model, inputs, np.arange(4))
  np.testing.assert_allclose(norms[:10], norms[0], rtol=1e-5)


def test_every_cell_reads_any_length_and_the_lstm_starts_with_forget_bias_1():
  for cell in gap_experiment.CELLS:
    model = gap_experiment.build_model(cell, hidden_size=5)
    assert model(tf.zeros([2, 31, 28])).shape == (2, 10)
    assert model(tf.zeros([2, 28, 28])).shape == (2, 10)
  bias = gap_experiment.build_model("lstm", 5).get_layer("lstm").cell.bias.numpy()
  np.testing.assert_array_equal(bias[5:10], np.ones(5))  # gates i, f, c, o


def test_the_chrono_lstm_starts_with_forget_biases_spread_up_to_the_sequence_length():
  keras.utils.set_random_seed(0)
  bias = gap_experiment.build_model("chrono", 400, steps=228).get_layer("chrono").cell.bias
  input_bias, forget_bias, rest = np.split(bias.numpy(), [400, 800])
  np.testing.assert_allclose(input_bias, -forget_bias)
  np.testing.assert_array_equal(rest, 0.0)
  # log(u), u uniform in [1, 227]: memories from 1 to 227 steps, a quarter of them over 170.
  assert 0 <= forget_bias.min() < 0.5 and np.log(200) < forget_bias.max() <= np.log(227)
  assert 0.2 < np.mean(np.exp(forget_bias) > 170) < 0.3


@pytest.mark.parametrize("cells, gaps, overrides, needle", [
    (["rnn", "elman"], [0], {}, "unknown cell 'elman'"),
    ([], [0], {}, "--cells is empty"),
    (["lstm"], [], {}, "--gaps is empty"),
    (["lstm"], [0, -3], {}, "--gaps has -3"),
    (["lstm"], [0], {"train_steps": 0}, "--train_steps is 0"),
])
def test_bad_requests_are_user_errors(tmp_path, cells, gaps, overrides, needle):
  with pytest.raises(UserError, match=needle):
    gap_experiment.check_request(GapConfig(**overrides), cells, gaps, tmp_path)


def test_gap_words_are_parsed_to_sorted_numbers():
  assert gap_experiment.parse_gaps(["100", "0", "25", "0"]) == [0, 25, 100]
  assert gap_experiment.parse_cells(["lstm", "", "gru", "lstm"]) == ["lstm", "gru"]
  with pytest.raises(UserError, match="whole numbers"):
    gap_experiment.parse_gaps(["0", "ten"])


@pytest.mark.parametrize("flag, needle", [  # the rest of test_bad_requests_are_user_errors too
    ("--gaps=", "--gaps is empty"),
    ("--cells=lstm,elman", "unknown cell 'elman'"),
])
def test_bad_flags_fail_in_one_line_and_leave_model_dir_alone(tmp_path, flag, needle):
  (tmp_path / "keep.txt").write_text("mine")
  result = run_cli("mnist_rnn.gap", flag, f"--model_dir={tmp_path}", "--data_dir=/nonexistent")
  assert_clean_error(result, f"error: {needle}")
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_model_dir_that_is_a_file_fails_in_one_line(tmp_path):
  path = tmp_path / "results.txt"
  path.write_text("mine")
  result = run_cli("mnist_rnn.gap", f"--model_dir={path}", "--data_dir=/nonexistent")
  assert_clean_error(result, "error: --model_dir", "is a file")
  assert path.read_text() == "mine" and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.slow
def test_tiny_sweep_end_to_end_then_a_rerun_skips_the_finished_runs(mnist_tiny_dir, tmp_path):
  model_dir = tmp_path / "gap"
  result = run_cli("mnist_rnn.gap", *TINY, f"--data_dir={mnist_tiny_dir}",
                   f"--model_dir={model_dir}")
  assert result.returncode == 0, result.stderr
  assert "sweep eta" in result.stderr and "examples/s" in result.stderr
  report = json.loads((model_dir / "gap.json").read_text())
  assert [(run["cell"], run["gap"]) for run in report["runs"]] == [
      ("rnn", 0), ("rnn", 3), ("lstm", 0), ("lstm", 3)]
  for run in report["runs"]:
    assert RUN_FIELDS <= set(run)
    assert run["train_steps"] == 3 and run["config"]["hidden_size"] == 4
    assert run["config"]["clip_norm"] == 1.0
    assert 0 <= run["test_accuracy"] <= 1 and np.isfinite(run["test_loss"])
    assert len(run["grad_norms_init"]) == len(run["grad_norms_trained"]) == 28 + run["gap"]
    assert report["accuracy"][run["cell"]][str(run["gap"])] == run["test_accuracy"]
    run_dir = model_dir / "runs" / f"{run['cell']}_gap{run['gap']}"
    train, test = event_values(run_dir / "train"), event_values(run_dir / "test")
    assert {"loss", "accuracy"} <= set(train) and train["loss"][-1][0] == 3
    assert test["accuracy"][0][1] == pytest.approx(run["test_accuracy"])
  assert (model_dir / "gap.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
  (step, image), = event_values(model_dir)["gap"]  # [width, height, PNG]
  height, width, _ = tf.image.decode_png((model_dir / "gap.png").read_bytes()).shape
  assert step == 4 and list(image[:2]) == [str(width).encode(), str(height).encode()]

  results = {p: (p.read_bytes(), p.stat().st_mtime_ns)
             for p in model_dir.glob("runs/*/result.json")}
  rerun = run_cli("mnist_rnn.gap", *TINY, f"--data_dir={mnist_tiny_dir}",
                  f"--model_dir={model_dir}")
  assert rerun.returncode == 0, rerun.stderr
  for name in ("rnn gap 0", "rnn gap 3", "lstm gap 0", "lstm gap 3"):
    assert f"skipping {name}: already finished" in rerun.stderr
  assert "examples/s" not in rerun.stderr  # no training
  assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in results} == results
  assert json.loads((model_dir / "gap.json").read_text())["runs"] == report["runs"]

  # Other settings in the same directory would mix in gap.json: refused, nothing touched.
  other = run_cli("mnist_rnn.gap", *TINY, "--train_steps=4", f"--data_dir={mnist_tiny_dir}",
                  f"--model_dir={model_dir}")
  assert_clean_error(other, "error:", "--train_steps=3", "a new --model_dir")
  assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in results} == results
