"""The training state both apps checkpoint beside the weights, under the same names.

A checkpoint is `tf.train.Checkpoint(model=..., optimizer=..., state=TrainingState)`; an app
subclasses `TrainingState` for what only it carries (ptb: the LSTM state and the dropout RNG;
mnist_rnn: the accuracy sums and throughput). The state is the same on every worker (it is
computed from all-reduced sums), so it is not mirrored.

Run directories written before these names were shared hold another layout; each app passes
`storage.checkpoint_manager` a `legacy` checkpoint that maps the old names onto these objects,
so they keep resuming.
"""
import time

import tensorflow as tf


class TrainingState(tf.Module):
  """Where training stands: epochs finished, steps into the next, its loss so far, wall time.

  `SUMS` names the sums a train step returns that are added up over an epoch, and the
  variable each is checkpointed in (a subclass adds its own); `common.loop` keeps them.
  """

  SUMS = {"loss": "epoch_loss"}

  def __init__(self):
    super().__init__()
    self.epoch = tf.Variable(0, dtype=tf.int64)  # epochs finished
    self.step = tf.Variable(0, dtype=tf.int64)  # steps done in the epoch in progress
    self.epoch_loss = tf.Variable(0.0, dtype=tf.float64)  # its training loss summed so far
    self.wall_seconds = tf.Variable(0.0, dtype=tf.float64)  # of all runs, up to `mark`
    self.mark = time.perf_counter()

  def elapsed(self):
    """Wall seconds of the run over all its restarts, as of now."""
    return float(self.wall_seconds.numpy()) + time.perf_counter() - self.mark

  def tick(self):
    """Moves the time since `mark` into wall_seconds (before a save)."""
    self.wall_seconds.assign(self.elapsed())
    self.mark = time.perf_counter()

  def restart_clock(self, since=None):
    """Counts wall time from `since` (a time.perf_counter() value; default now), not from
    when this object was built or restored."""
    self.mark = time.perf_counter() if since is None else since

  def epoch_sums(self):
    """The sums of the epoch in progress so far, {name: float64 tensor}."""
    return {name: tf.constant(getattr(self, variable).numpy(), tf.float64)
            for name, variable in self.SUMS.items()}

  def record(self, step, sums):
    """Records the position in the epoch (`step` steps done) and its `sums`, before a save."""
    self.tick()
    self.step.assign(step)
    for name, variable in self.SUMS.items():
      getattr(self, variable).assign(sums[name])

  def finish_epoch(self):
    """Counts the epoch in progress as finished and clears its position and sums."""
    self.epoch.assign_add(1)
    self.step.assign(0)
    for variable in self.SUMS.values():
      getattr(self, variable).assign(0.0)
    self.tick()

  def checkpoint(self, model, optimizer=None):
    """The checkpoint of a run: the weights, the optimizer's slots (if any), this state."""
    parts = {"model": model, "state": self}
    if optimizer is not None:
      parts["optimizer"] = optimizer
    return tf.train.Checkpoint(**parts)


def holds_state(checkpoint_path):
  """Whether the checkpoint at `checkpoint_path` has today's layout (a `state` object)."""
  return any(name.startswith("state/") for name, _ in tf.train.list_variables(checkpoint_path))
