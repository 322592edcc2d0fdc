"""common.loop, the one training loop: resuming, checkpoint cadence, the files it writes, the
config check every app gets, and the schedule both tutorials use."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from common import distribute, loop, training_state
from common.errors import UserError
from conftest import assert_clean_error, run_cli
from mnist_rnn import configs as mnist_configs
from mnist_rnn import data as mnist_data
from mnist_rnn import gap_experiment
from ptb import configs as ptb_configs
from ptb import train as ptb_train


class Stop(Exception):
  """Stands in for kill -9 in the toy task."""


class CountingTask(loop.Task):
  """A task without a model: step k of epoch e adds 10 * e + k to the loss; optionally stops
  (as a killed process would) just before a given (epoch, step)."""
  unit = "steps"

  def __init__(self, model_dir, epochs=2, steps=5, every=2, stop_at=None):
    self.state = training_state.TrainingState()
    self.weight = tf.Variable(0.0)  # what a model would be: changed by every step
    checkpoint = self.state.checkpoint(tf.Module())
    checkpoint.weight = self.weight
    self.manager = tf.train.CheckpointManager(checkpoint, str(model_dir / "checkpoints"), 10)
    checkpoint.restore(self.manager.latest_checkpoint)
    self.epochs, self.steps_per_epoch, self.stop_at = epochs, steps, stop_at
    self.options = loop.RunOptions(checkpoint_every_steps=every)
    self.lines, self.evaluated = [], []

  def start_epoch(self, epoch):
    return 0.5 ** epoch

  def batches(self, epoch, start):
    return ((epoch, step) for step in range(start + 1, self.steps_per_epoch + 1))

  def train_step(self, batch):
    if batch == self.stop_at:
      raise Stop()
    self.weight.assign_add(1.0)
    return {"loss": tf.constant(10.0 * batch[0] + batch[1])}

  def count(self, steps, sums):
    return steps

  def log_progress(self, epoch, step, sums, learning_rate, rate, eta):
    self.lines.append((epoch + 1, step, float(sums["loss"])))
    return {"loss": float(sums["loss"]) / step}

  def end_epoch(self, epoch, learning_rate, sums, rate):
    self.evaluated.append(epoch)
    return {"valid": {"loss": sums["loss"]}}, {"train_loss": sums["loss"], "lr": learning_rate}

  def finish(self, history, summaries):
    return {"weight": float(self.weight.numpy()), "history": history}


def _run(model_dir, **kwargs):
  task = CountingTask(model_dir, **kwargs)
  return task, loop.run(task, distribute.ChiefDir(tf.distribute.get_strategy(), model_dir))


def _without_times(history):
  return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in history]


def test_an_uninterrupted_run_writes_history_metrics_and_every_epochs_sums(tmp_path):
  task, results = _run(tmp_path)
  # Epoch 1 adds 1..5, epoch 2 adds 11..15; each epoch's sums start from zero.
  assert _without_times(results["history"]) == [
      {"epoch": 1, "train_loss": 15.0, "lr": 1.0}, {"epoch": 2, "train_loss": 65.0, "lr": 0.5}]
  assert results["weight"] == 10.0 and task.evaluated == [0, 1]
  assert json.loads((tmp_path / "metrics.json").read_text()) == results
  assert json.loads((tmp_path / "history.json").read_text()) == results["history"]
  # A line every tenth of an epoch (every step of these 5) and at the end, epochs from 1.
  assert [line[:2] for line in task.lines] == [(e, s) for e in (1, 2) for s in range(1, 6)]
  # Checkpoints at steps 2 and 4 of each epoch and at each epoch's end: 6.
  assert task.manager.checkpoints[-1].endswith("ckpt-6")


def test_a_run_stopped_mid_epoch_resumes_to_the_uninterrupted_numbers(tmp_path):
  _, expected = _run(tmp_path / "whole")
  with pytest.raises(Stop):
    _run(tmp_path / "stopped", stop_at=(1, 4))  # epoch 2, after its step-2 checkpoint
  task, resumed = _run(tmp_path / "stopped")
  assert _without_times(resumed["history"]) == _without_times(expected["history"])
  assert resumed["weight"] == expected["weight"]  # steps 3 and 4 of epoch 2 redone, once
  assert task.evaluated == [1]  # epoch 1 was finished: not trained or validated again
  assert task.lines[0] == (2, 3, 10.0 * 1 + 1 + 12 + 13)  # the sums carried over


def test_a_finished_run_run_again_only_finishes_and_more_epochs_continue(tmp_path):
  _run(tmp_path)
  task, again = _run(tmp_path)
  assert task.evaluated == [] and task.lines == [] and len(again["history"]) == 2
  task, longer = _run(tmp_path, epochs=3)
  assert task.evaluated == [2] and [row["epoch"] for row in longer["history"]] == [1, 2, 3]


def test_the_schedule_holds_the_rate_then_decays_it_each_epoch():
  rates = [loop.decayed_rate(1.0, 0.5, 4, epoch) for epoch in range(7)]
  assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
  # mnist_rnn's tutorial config: 8 epochs at 1e-3, then halved each of the last 4.
  mnist = [mnist_configs.learning_rate(mnist_configs.TutorialConfig(), e) for e in range(12)]
  assert mnist[:8] == [1e-3] * 8 and mnist[8:] == pytest.approx([5e-4, 2.5e-4, 1.25e-4, 6.25e-5])


def test_config_json_refuses_changed_fields_and_lets_epochs_grow(tmp_path):
  config = ptb_configs.TestConfig()
  loop.check_config(tmp_path, config)
  (tmp_path / "checkpoints").mkdir()
  loop.check_config(tmp_path, dataclasses.replace(config, epochs=5))  # train longer: fine
  with pytest.raises(UserError, match=r"different configuration \(learning_rate, num_steps "
                                      r"differ\): use a new --model_dir"):
    loop.check_config(tmp_path, dataclasses.replace(config, learning_rate=0.5, num_steps=3))


def test_a_ptb_run_started_before_the_loop_resumes(tmp_path):
  """config.json as ptb wrote it before the loop: `max_max_epoch`, and no precision,
  jit_compile or seed (those were run options then: not compared)."""
  medium = dataclasses.asdict(ptb_configs.MediumConfig())
  old = {k: v for k, v in medium.items() if k not in ("epochs", "precision", "jit_compile",
                                                       "seed")}
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(json.dumps({**old, "max_max_epoch": 39}))
  resolved = dataclasses.replace(ptb_configs.MediumConfig(), precision="bfloat16_matmuls")
  ptb_train.check_config(tmp_path, resolved, write=False)  # resumes: no error
  with pytest.raises(UserError, match="keep_prob differ"):
    ptb_train.check_config(tmp_path, dataclasses.replace(resolved, keep_prob=1.0))
  assert ptb_configs.get_config("medium", max_max_epoch=40).epochs == 40


@pytest.mark.slow
def test_mnist_refuses_to_resume_with_another_learning_rate(tmp_path):
  args = ["--config=test", "--use_synthetic_data", "--max_steps_per_epoch=2",
          f"--model_dir={tmp_path}"]
  assert run_cli("mnist_rnn.main", *args).returncode == 0
  before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
  result = run_cli("mnist_rnn.main", *args, "--learning_rate=0.01", "--epochs=2")
  assert_clean_error(result, "learning_rate differ", "new --model_dir")
  assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_gap_run_refuses_to_resume_with_other_settings(tmp_path):
  mnist = mnist_data.synthetic(seed=0, num_train=64, num_test=16)
  config = gap_experiment.GapConfig(train_steps=2, hidden_size=3, batch_size=8,
                                    grad_examples=4)
  result = gap_experiment.run_one("rnn", 1, config, mnist, tmp_path)
  assert result["train_steps"] == 2 and np.isfinite(result["test_loss"])
  with pytest.raises(UserError, match="hidden_size differ"):
    gap_experiment.run_one("rnn", 1, dataclasses.replace(config, hidden_size=5), mnist,
                           tmp_path)
  assert json.loads((tmp_path / "result.json").read_text()) == result
