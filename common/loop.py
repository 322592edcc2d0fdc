"""The one training loop: every app's `train_and_evaluate` hands `run` a `Task`.

As every flax example has the same `train_and_evaluate(config, workdir)`, every app here
writes only what is its own (its data, model, step function, log line, evaluation and export,
as a `Task`), and this module does the rest the same way for all of them:

    MODEL_DIR/config.json   the config, written before training (`check_config`); a rerun whose
                            config differs in any field but `epochs` is refused, naming them
    MODEL_DIR/checkpoints/  every `checkpoint_every_steps` steps and at each epoch's end, with
                            the position in the epoch and its sums: run again to resume
    MODEL_DIR/train/ ...    TensorBoard scalars, one writer per split
    MODEL_DIR/history.json  one row per finished epoch
    MODEL_DIR/export/       the app's SavedModel (`Task.finish`)
    MODEL_DIR/metrics.json  last: the results

A config (one frozen dataclass per named configuration, in the app's `configs.py`) is what a
run computes: the model, the schedule and the arithmetic (precision, LSTM implementation, XLA,
seed). `RunOptions` is how this run is carried out without changing its numbers.

Epochs count from 0 in code (`epoch` is the number finished before the one in progress, and
the schedules take it); every log line and TensorBoard step shows `epoch + 1`.
"""
import dataclasses
import json
import pathlib

import tensorflow as tf

from common import storage
from common.errors import UserError
from common.progress import Progress, Summaries, format_seconds, log


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How a run is carried out, as opposed to what it computes (that is the config)."""
  data_dir: str = ""
  use_synthetic_data: bool = False   # random data of the real shapes: speed without a dataset
  checkpoint_every_steps: int = 0    # 0: at each epoch's end only
  log_every_steps: int = 0           # 0: ten lines an epoch
  keep_checkpoints: int = 3          # the newest checkpoints kept in MODEL_DIR/checkpoints
  # --jit_compile (or --nojit_compile) was on the command line: not dropped for cuDNN on a GPU
  # (common.devices.decide).
  jit_compile_given: bool = False


def decayed_rate(base, decay, full_epochs, epoch):
  """The tutorials' schedule: `base` for `full_epochs` epochs, then times `decay` each epoch
  (`epoch` counts from 0)."""
  return base * decay ** max(epoch + 1 - full_epochs, 0)


class Task:
  """What an app supplies to `run`; subclasses override the methods that raise.

  Attributes set by the app: `config`, `state` (a `common.training_state.TrainingState`,
  restored), `manager` (its CheckpointManager), `epochs`, `steps_per_epoch`, `options`
  (RunOptions); `unit` names what the rate counts and `metrics_file` the results file.
  """
  unit = "examples"
  metrics_file = "metrics.json"

  def start_epoch(self, epoch):
    """Prepares epoch `epoch` (its learning rate, its first log line); returns the rate."""
    raise NotImplementedError

  def batches(self, epoch, start):
    """The batches of epoch `epoch` after the first `start`, each what `train_step` takes."""
    raise NotImplementedError

  def train_step(self, batch):
    """One step; returns {name: summed tensor} with a name for each of `state.SUMS`."""
    raise NotImplementedError

  def count(self, steps, sums):
    """How many `unit`s the epoch's first `steps` steps, whose sums are `sums`, took in."""
    raise NotImplementedError

  def log_due(self, step):
    """Whether a progress line is due after `step` (the epoch's last step always has one)."""
    every = self.options.log_every_steps or max(self.steps_per_epoch // 10, 1)
    return step % every == 0

  def log_progress(self, epoch, step, sums, learning_rate, rate, eta):
    """Logs the app's progress line; returns TensorBoard `train/` scalars for it, or None."""
    raise NotImplementedError

  def record(self, step, sums):
    """Puts the epoch's position and sums into the state (an app adds what else it carries)."""
    self.state.record(step, sums)

  def save(self, step, sums):
    """Checkpoints the epoch's position and sums, part way through it."""
    self.record(step, sums)
    self.manager.save()

  def end_epoch(self, epoch, learning_rate, sums, rate):
    """After epoch `epoch`'s last step: evaluates it.

    Returns:
      ({split: TensorBoard scalars}, the epoch's row of history.json).
    """
    raise NotImplementedError

  def images(self, epoch):
    """After end_epoch(epoch): {split: {name: uint8 image(s)}} for TensorBoard; none here."""
    return {}

  def finish(self, history, summaries):
    """After the last epoch (or none, when a finished run is run again): the final
    evaluation (its scalars to `summaries`) and the export; returns the results for
    `metrics_file`."""
    raise NotImplementedError


def run(task, chief):
  """Trains `task` from its checkpointed position for its remaining epochs, then finishes it.

  Args:
    task: a Task, its state restored.
    chief: a `common.distribute.ChiefDir`: where this worker writes.

  Returns:
    The results, also written to MODEL_DIR/`task.metrics_file` (on the chief).
  """
  summaries = Summaries(str(chief.path))
  # Epochs validated after the last checkpoint are trained again, so drop their rows.
  history = [row for row in read_history(chief.model_dir)
             if row["epoch"] <= int(task.state.epoch.numpy())]
  while int(task.state.epoch.numpy()) < task.epochs:
    epoch = int(task.state.epoch.numpy())
    learning_rate = task.start_epoch(epoch)
    sums, rate = run_epoch(task, epoch, learning_rate, summaries)
    scalars, row = task.end_epoch(epoch, learning_rate, sums, rate)
    for split, values in scalars.items():
      summaries.scalars(split, values, epoch + 1)
    for split, images in task.images(epoch).items():
      summaries.images(split, images, epoch + 1)
    task.state.finish_epoch()
    task.manager.save()
    history.append({"epoch": epoch + 1, **row, "wall_seconds": task.state.elapsed()})
    storage.write_json(chief.path / "history.json", history)
  results = task.finish(history, summaries)
  summaries.close()
  storage.write_json(chief.path / task.metrics_file, results)
  if chief.chief:
    log("wrote %s", chief.path / task.metrics_file)
  else:
    log("this worker is not the chief: the chief writes the results")
  chief.clean()
  return results


def run_epoch(task, epoch, learning_rate, summaries):
  """Trains epoch `epoch` from the checkpointed step, logging and checkpointing as it goes.

  Returns:
    ({name: the epoch's sum, a float}, units per second).
  """
  state, steps = task.state, task.steps_per_epoch
  start = int(state.step.numpy())
  sums = state.epoch_sums()  # float64 tensors: added to on the device, read only to log
  done_before = task.count(start, sums)
  progress = Progress(steps, done=start)
  every = task.options.checkpoint_every_steps
  for step, batch in enumerate(task.batches(epoch, start), start + 1):
    step_sums = task.train_step(batch)
    sums = {name: sums[name] + tf.cast(step_sums[name], tf.float64) for name in sums}
    if task.log_due(step) or step == steps:
      rate = (task.count(step, sums) - done_before) / max(progress.elapsed(), 1e-9)
      scalars = task.log_progress(epoch, step, sums, learning_rate, rate,
                                  format_seconds(progress.eta(step)))
      if scalars:
        summaries.scalars("train", scalars, epoch * steps + step)
    if every and step % every == 0 and step < steps:
      task.save(step, sums)
  rate = (task.count(steps, sums) - done_before) / max(progress.elapsed(), 1e-9)
  task.record(steps, sums)  # saved with the epoch's end, once it is evaluated
  return {name: float(value) for name, value in sums.items()}, rate


def read_history(model_dir):
  path = pathlib.Path(model_dir) / "history.json"
  return json.loads(path.read_text()) if path.exists() else []


def check_config(model_dir, config, upgrade=None, write=True):
  """Refuses to resume a MODEL_DIR trained with another config (it would mix two runs); else
  writes MODEL_DIR/config.json.

  Only `epochs` may change, so that a finished run can be trained for longer. A field an
  older run's config.json does not hold (after `upgrade`, which maps an old file to today's
  names and the values fields had before they were recorded) is not compared.
  """
  path = pathlib.Path(model_dir) / "config.json"
  wanted = dataclasses.asdict(config)
  saved = saved_config(model_dir, upgrade)
  if saved is not None:
    changed = sorted(name for name in wanted
                     if name != "epochs" and name in saved and saved[name] != wanted[name])
    if changed:
      raise UserError(f"{model_dir} holds a run of a different configuration "
                      f"({', '.join(changed)} differ): use a new --model_dir, or the flags it "
                      "was trained with to resume it")
  if write:
    storage.write_json(path, wanted)


def saved_config(model_dir, upgrade=None):
  """The config.json of the run MODEL_DIR holds (in today's fields, through `upgrade`), or
  None where there is no run to resume (no checkpoints)."""
  model_dir = pathlib.Path(model_dir)
  path = model_dir / "config.json"
  if not (path.exists() and (model_dir / "checkpoints").exists()):
    return None
  saved = json.loads(path.read_text())
  return upgrade(saved) if upgrade else saved
