"""Both apps checkpoint their training state under the same names, and run directories written
in each app's earlier layout still resume, with every value in place."""
import dataclasses

import numpy as np
import tensorflow as tf

from common import distribute, training_state
from mnist_rnn import configs as mnist_configs
from mnist_rnn import train as mnist_train
from ptb import configs as ptb_configs
from ptb import train as ptb_train

SHARED = {"epoch", "step", "epoch_loss", "wall_seconds"}


def _names(checkpoint_path):
  return {name.split("/.ATTRIBUTES")[0] for name, _ in tf.train.list_variables(checkpoint_path)}


def _save(checkpoint, directory):
  return tf.train.CheckpointManager(checkpoint, str(directory / "checkpoints"), 3).save()


def _ptb_build(config, model_dir):
  strategy = tf.distribute.get_strategy()
  return ptb_train.build(config, distribute.ChiefDir(strategy, model_dir),
                         ptb_train.RunOptions(), strategy)


def _mnist_build(config, model_dir):
  strategy = tf.distribute.get_strategy()
  return mnist_train.build_or_restore(config, distribute.ChiefDir(strategy, model_dir), strategy)


def _ptb_config():
  return dataclasses.replace(ptb_configs.TestConfig(), vocab_size=20, batch_size=3,
                             optimizer="adam", learning_rate=1e-3)


def test_both_apps_save_the_shared_names_under_state(tmp_path):
  model, optimizer, state, manager = _ptb_build(_ptb_config(), tmp_path / "ptb")
  ptb_names = _names(manager.save())
  model, optimizer, state, manager = _mnist_build(mnist_configs.TestConfig(), tmp_path / "mnist")
  mnist_names = _names(manager.save())
  for names in (ptb_names, mnist_names):
    assert {f"state/{name}" for name in SHARED} <= names
    assert "optimizer/_iterations" in names
  assert {"state/lstm_state", "state/rng/_state_var"} <= ptb_names
  assert {"state/epoch_correct", "state/epoch_seen", "state/train_seconds"} <= mnist_names


def test_a_ptb_run_directory_of_the_old_layout_resumes(tmp_path):
  config = _ptb_config()
  model, optimizer, _, _ = _ptb_build(config, tmp_path / "scratch")
  for variable in model.trainable_variables:
    variable.assign(tf.random.normal(variable.shape, seed=1))
  optimizer.apply(model.trainable_variables, model.trainable_variables)  # slots not zero
  # What ptb saved before the shared names, built by hand: one `train` module holding it all.
  old = tf.Module()
  old.model, old.optimizer = model, optimizer
  old.epoch = tf.Variable(3, dtype=tf.int64)
  old.step = tf.Variable(7, dtype=tf.int64)
  old.lstm_state = tf.Variable(tf.random.normal(model.zero_state(config.batch_size).shape))
  old.train_nll = tf.Variable(123.5, dtype=tf.float64)
  old.rng = tf.random.Generator.from_seed(5)
  old.wall_seconds = tf.Variable(42.0, dtype=tf.float64)
  _save(tf.train.Checkpoint(train=old), tmp_path / "old")
  next_seeds = old.rng.make_seeds(1).numpy()

  resumed, resumed_optimizer, state, manager = _ptb_build(config, tmp_path / "old")
  assert (int(state.epoch), int(state.step), float(state.epoch_loss)) == (3, 7, 123.5)
  assert float(state.wall_seconds) == 42.0
  np.testing.assert_array_equal(state.lstm_state, old.lstm_state)
  np.testing.assert_array_equal(state.rng.make_seeds(1), next_seeds)
  for got, want in zip(resumed.weights + resumed_optimizer.variables,
                       model.weights + optimizer.variables):
    np.testing.assert_array_equal(got, want)
  assert "state/epoch" in _names(manager.save())  # and it goes on in today's layout
  _, _, again, _ = _ptb_build(config, tmp_path / "old")
  assert (int(again.epoch), int(again.step), float(again.epoch_loss)) == (3, 7, 123.5)


def test_a_mnist_run_directory_of_the_old_layout_resumes(tmp_path):
  config = mnist_configs.TestConfig()
  model, optimizer, _, _ = _mnist_build(config, tmp_path / "scratch")
  for variable in model.trainable_variables:
    variable.assign(tf.random.normal(variable.shape, seed=2))
  optimizer.apply(model.trainable_variables, model.trainable_variables)
  values = {"epoch": 1, "step": 5, "epoch_loss": 9.25, "epoch_correct": 150.0,
            "epoch_seen": 160.0, "train_examples": 2080.0, "train_seconds": 3.5,
            "wall_seconds": 4.5}
  # What mnist_rnn saved before the shared names: its variables at the top level.
  old = {name: tf.Variable(value, dtype=tf.int64 if isinstance(value, int) else tf.float64)
         for name, value in values.items()}
  _save(tf.train.Checkpoint(model=model, optimizer=optimizer, **old), tmp_path / "old")

  resumed, resumed_optimizer, state, manager = _mnist_build(config, tmp_path / "old")
  assert {name: getattr(state, name).numpy().item() for name in values} == values
  step, loss, accuracy = state.resume()
  assert (step, loss.count, accuracy.count) == (5, 160.0, 160.0)
  for got, want in zip(resumed.weights + resumed_optimizer.variables,
                       model.weights + optimizer.variables):
    np.testing.assert_array_equal(got, want)
  assert "state/epoch_correct" in _names(manager.save())


def test_finishing_an_epoch_counts_it_and_clears_what_the_next_starts_from(tmp_path):
  mnist_state = mnist_train.TrainState()
  _, _, ptb_state, _ = _ptb_build(_ptb_config(), tmp_path)
  ptb_state.lstm_state.assign(tf.ones_like(ptb_state.lstm_state))
  mnist_state.epoch_seen.assign(10.0)
  for state in (mnist_state, ptb_state):
    state.step.assign(5)
    state.epoch_loss.assign(2.0)
    state.finish_epoch()
    assert (int(state.epoch), int(state.step), float(state.epoch_loss)) == (1, 0, 0.0)
    assert float(state.wall_seconds) > 0
  assert float(mnist_state.epoch_seen) == 0.0
  assert not np.any(ptb_state.lstm_state.numpy())  # each epoch starts from zero state


def test_a_checkpoint_of_todays_layout_is_told_apart_from_an_old_one(tmp_path):
  state = training_state.TrainingState()
  new = _save(tf.train.Checkpoint(state=state), tmp_path / "new")
  old = _save(tf.train.Checkpoint(epoch=tf.Variable(1)), tmp_path / "old")
  assert training_state.holds_state(new) and not training_state.holds_state(old)
