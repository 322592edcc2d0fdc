"""python -m mnist_rnn.main end to end: artefacts, resuming, and clean errors for bad input."""
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, assert_clean_error, run_cli, write_idx
from mnist_rnn import configs, data
from mnist_rnn.model import build_model, uses_cell_op

LOG_LINE = re.compile(r"epoch +1/1 +train +20/20 +loss +\d\.\d{4} +accuracy +\d+\.\d{3}% +"
                      r"lr 1\.0e-03 +\d+ examples/s +eta \d\d:\d\d")


def scalars(log_dir):
  """{(tag, step): value} from the TensorBoard event files in `log_dir`."""
  values = {}
  for path in log_dir.glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        values[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
  return values


def snapshot(directory):
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def metrics_of(model_dir):
  return json.loads((model_dir / "metrics.json").read_text())


def test_end_to_end_writes_events_checkpoint_metrics_and_export(mnist_trained, mnist_dir):
  model_dir, result = mnist_trained
  assert LOG_LINE.search(result.stderr), result.stderr
  # The test config's LSTM runs in row groups on a CPU, so each op gets one thread.
  on_gpu = bool(tf.config.list_physical_devices("GPU"))
  assert ("(one per core)" if on_gpu else "ops run on 1 thread each") in result.stderr
  # And its cell runs as common/cell_op.py's op wherever that can be built (a CPU, a compiler).
  trained = dataclasses.replace(configs.TestConfig(), precision=metrics_of(model_dir)["config"][
      "precision"])
  assert ("LSTM cell: one op per step, compiled for this CPU" if uses_cell_op(trained)
          else "LSTM cell: TensorFlow ops") in result.stderr
  metrics = metrics_of(model_dir)
  assert metrics["epochs"] == 1 and metrics["test_examples"] == 10_000
  assert metrics["train_examples_per_second"] > 0 and metrics["wall_seconds"] > 0
  assert metrics["config"]["hidden_size"] == configs.TestConfig().hidden_size

  train_scalars, test_scalars = scalars(model_dir / "train"), scalars(model_dir / "test")
  assert {("loss", 1), ("accuracy", 1), ("learning_rate", 1)} <= set(train_scalars)
  assert test_scalars[("accuracy", 1)] == pytest.approx(metrics["test_accuracy"])
  assert test_scalars[("loss", 1)] == pytest.approx(metrics["test_loss"], rel=1e-5)

  checkpoint = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
  assert checkpoint.endswith("ckpt-1")
  model = build_model(configs.TestConfig())
  tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()

  images, labels = data.read_split(mnist_dir, "test")
  serve = tf.saved_model.load(str(model_dir / "export")).signatures["serving_default"]
  outputs = serve(images=tf.constant(images))
  assert outputs["probabilities"].dtype == tf.float32 and outputs["classes"].dtype == tf.int64
  assert outputs["probabilities"].shape == (10_000, 10)
  expected = tf.nn.softmax(model(data.preprocess(images[:200]))).numpy()
  np.testing.assert_allclose(outputs["probabilities"][:200].numpy(), expected, atol=1e-5)
  accuracy = np.mean(outputs["classes"].numpy() == labels)
  assert accuracy == pytest.approx(metrics["test_accuracy"], abs=2e-4)  # 2 images of 10,000
  assert accuracy > 0.11  # 20 steps already beat chance


@pytest.mark.slow
def test_rerun_with_more_epochs_resumes_from_the_checkpoint(mnist_trained, mnist_dir, tmp_path):
  model_dir = tmp_path / "model"
  shutil.copytree(mnist_trained[0], model_dir)
  result = run_cli("mnist_rnn.main", "--config=test", "--epochs=2", f"--data_dir={mnist_dir}",
                   f"--model_dir={model_dir}")
  assert result.returncode == 0, result.stderr
  assert "resumed from" in result.stderr and "1 of 2 epochs done" in result.stderr
  assert "epoch   1/2   train" not in result.stderr
  assert "epoch   2/2   train    20/20" in result.stderr
  assert metrics_of(model_dir)["epochs"] == 2
  assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-2")
  assert ("accuracy", 2) in scalars(model_dir / "test")


@pytest.mark.slow
def test_rerun_of_a_finished_run_only_evaluates_and_exports(mnist_trained, mnist_dir, tmp_path):
  model_dir = tmp_path / "model"
  shutil.copytree(mnist_trained[0], model_dir)
  checkpoints = snapshot(model_dir / "checkpoints")
  before = metrics_of(model_dir)
  (model_dir / "metrics.json").unlink()
  shutil.rmtree(model_dir / "export")
  result = run_cli("mnist_rnn.main", "--config=test", f"--data_dir={mnist_dir}",
                   f"--model_dir={model_dir}")
  assert result.returncode == 0, result.stderr
  assert "nothing to train" in result.stderr and " train " not in result.stderr
  assert snapshot(model_dir / "checkpoints") == checkpoints
  after = metrics_of(model_dir)
  assert after["test_accuracy"] == before["test_accuracy"] and after["epochs"] == 1
  assert (model_dir / "export" / "saved_model.pb").exists()


@pytest.mark.slow
def test_kill_9_mid_run_loses_at_most_the_current_epoch(mnist_dir, tmp_path):
  model_dir = tmp_path / "model"
  args = ["--config=test", "--epochs=3", "--max_steps_per_epoch=300", f"--data_dir={mnist_dir}",
          f"--model_dir={model_dir}"]
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
  process = subprocess.Popen([sys.executable, "-m", "mnist_rnn.main", *args], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 120
    # The state file names a checkpoint only once it is completely written.
    while not (model_dir / "checkpoints" / "checkpoint").exists():
      assert process.poll() is None and time.time() < deadline, "no checkpoint after epoch 1"
      time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # in epoch 2, before its checkpoint
  finally:
    process.kill()
    process.wait()
  assert not (model_dir / "metrics.json").exists()
  result = run_cli("mnist_rnn.main", *args)
  assert result.returncode == 0, result.stderr
  done = int(re.search(r"resumed from \S+: (\d) of 3 epochs done", result.stderr).group(1))
  assert done >= 1
  assert "epoch   1/3   train" not in result.stderr
  assert metrics_of(model_dir)["epochs"] == 3


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
  """A model directory trained on 5 images: bad runs against it must leave it as it was."""
  data_dir, model_dir = tmp_path_factory.mktemp("tiny_data"), tmp_path_factory.mktemp("tiny")
  for prefix, count in (("train", 5), ("t10k", 3)):
    write_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz", 2051, np.zeros((count, 28, 28)))
    write_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz", 2049, np.arange(count))
  result = run_cli("mnist_rnn.main", "--config=test", f"--data_dir={data_dir}",
                   f"--model_dir={model_dir}")
  assert result.returncode == 0, result.stderr
  return model_dir


def header(magic, *dims):
  return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def gzip_bytes(raw):
  import gzip  # pylint: disable=import-outside-toplevel
  return gzip.compress(raw)


BAD_FILES = {  # case -> (file, its new bytes or None to delete it, words of the error)
    "missing": ("t10k-labels-idx1-ubyte.gz", None, "but not t10k-labels-idx1-ubyte.gz"),
    "empty": ("train-images-idx3-ubyte.gz", b"", "is empty"),
    "truncated": ("train-images-idx3-ubyte.gz", gzip_bytes(header(2051, 5, 28, 28))[:20],
                  "truncated"),
    "corrupt": ("t10k-images-idx3-ubyte.gz", b"\x1f\x8b\x08\x00garbage" * 9, "not gzip"),
    "wrong magic": ("train-labels-idx1-ubyte.gz", gzip_bytes(header(2051, 5) + bytes(5)),
                    "magic number 2051, expected 2049"),
    "count mismatch": ("train-labels-idx1-ubyte.gz", gzip_bytes(header(2049, 4) + bytes(4)),
                       "holds 5 images but"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_data_file_is_a_clean_error_that_damages_nothing(case, mnist_tiny_dir,
                                                             tiny_model_dir):
  name, contents, words = BAD_FILES[case]
  if contents is None:
    (mnist_tiny_dir / name).unlink()
  else:
    (mnist_tiny_dir / name).write_bytes(contents)
  before = snapshot(tiny_model_dir)
  result = run_cli("mnist_rnn.main", "--config=test", "--epochs=2",
                   f"--data_dir={mnist_tiny_dir}", f"--model_dir={tiny_model_dir}")
  assert_clean_error(result, name, words)
  assert snapshot(tiny_model_dir) == before


@pytest.mark.parametrize("flag", ["--epochs=-1", "--cell=transformer", "--batch_size=0",
                                  "--row_groups=-1", "--intra_op_threads=-1"])
def test_invalid_flag_is_a_clean_error_naming_it(flag, tiny_model_dir):
  before = snapshot(tiny_model_dir)
  result = run_cli("mnist_rnn.main", flag, f"--model_dir={tiny_model_dir}")
  assert_clean_error(result, flag.split("=")[0])
  assert snapshot(tiny_model_dir) == before


@pytest.mark.slow
def test_checkpoint_of_another_configuration_is_a_clean_error(mnist_tiny_dir, tiny_model_dir):
  before = snapshot(tiny_model_dir)
  result = run_cli("mnist_rnn.main", "--config=test", "--hidden_size=32", "--epochs=2",
                   f"--data_dir={mnist_tiny_dir}", f"--model_dir={tiny_model_dir}")
  assert_clean_error(result, "different configuration", "--model_dir")
  assert snapshot(tiny_model_dir) == before
