"""The vanishing gradient, measured: plain RNN, IRNN, GRU and LSTMs as the gap grows.

Each MNIST image is read row by row, as in the tutorial, then `gap` all-zero rows follow; a
dense classifier reads the state after the last step, so the digit has to be carried across
the gap:

    step    0 .. 27            28 .. 27+gap            the state after the last step
    input   the image's rows   all-zero rows     -->   Dense -> 10 logits
    distance from the end:     gap+27 .. gap   gap-1 .. 0

Besides the test accuracy, each run measures the vanishing gradient itself: the norm of the
gradient of the loss with respect to the input at each step, ||dL/dx_t||, at initialisation
and after training (`input_gradient_norms`). The command line is `mnist_rnn.gap`.
"""
import dataclasses
import io
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from common import devices, distribute, loop, lstm, storage, training_state
from common.errors import UserError
from common.metrics import Mean
from common.progress import Progress, format_seconds, log
from mnist_rnn import data
from mnist_rnn.train import batch_sums

CELLS = ("rnn", "irnn", "gru", "lstm", "chrono")
DEFAULT_GAPS = (0, 25, 50, 100, 200)
CHANCE = 1 / data.NUM_CLASSES
JIT_COMPILE = True  # XLA: faster on a CPU for these long loops of small matmuls
# One thread per op: the matmuls of one step are too small to split across cores with gain.
INTRA_OP_THREADS = 1
LOG_EVERY_STEPS = 100
EVAL_BATCH_SIZE = 500
LOG_LINE = ("{cell:<6s} gap {gap:3d}  step {step:5d}/{steps:<5d} loss {loss:7.4f}  accuracy "
            "{accuracy:7.3f}%  |grad| {grad_norm:8.3f}  {rate:5.0f} examples/s  eta {eta}  "
            "sweep eta {sweep_eta}")


@dataclasses.dataclass(frozen=True)
class GapConfig:
  """The default sweep: the same hidden size and training budget for every cell and gap.

  Sized so that all 25 runs (5 cells, gaps 0 to 200) take under 30 minutes on a 2-core CPU:
  20 min 58 s measured (README).
  """
  train_steps: int = 1500
  hidden_size: int = 64
  batch_size: int = 128
  learning_rate: float = 1e-3
  seed: int = 0
  # Gradients clipped to this global norm (all cells alike): without it the plain RNN's
  # exploding gradients can throw a run into NaN, and one cell would not be a fair comparison.
  clip_norm: float = 1.0
  grad_examples: int = 256  # the first test images, for ||dL/dx_t||


def run_name(cell, gap):
  return f"{cell}_gap{gap}"


# --- The data ------------------------------------------------------------------------------


def add_gap(rows, gap):
  """float32 rows [batch, 28, 28] -> [batch, 28 + gap, 28], the last `gap` rows all zero."""
  return tf.pad(rows, [[0, 0], [0, gap], [0, 0]])


def gap_batches(images, labels, gap, batch_size, seed=None):
  """Batches of (float32 sequences [batch, 28 + gap, 28], int64 labels [batch]).

  Args:
    images, labels: uint8 [N, 28, 28] and [N], as `mnist_rnn.data.load` returns them.
    gap: all-zero rows after each image.
    batch_size: sequences per batch.
    seed: None: one pass in order, the last batch maybe short (evaluation); else shuffled
      with this seed, reshuffled every pass, repeated forever in full batches (training).
  """
  dataset = data.examples(images, labels)
  if seed is not None:
    dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
  dataset = dataset.batch(batch_size, drop_remainder=seed is not None)
  return dataset.map(lambda x, y: (add_gap(data.preprocess(x), gap), y)).prefetch(2)


def gradient_batch(mnist, gap, count):
  """The fixed batch ||dL/dx_t|| is measured on: the first `count` test images, with the gap."""
  images, labels = (array[:count] for array in mnist["test"])
  return add_gap(data.preprocess(images), gap), tf.constant(labels, tf.int64)


# --- The models and the measurement ---------------------------------------------------------


def recurrent_layer(cell, hidden_size, steps=data.IMAGE_SIZE):
  """The Keras layer for `cell`, returning its state after the last step [batch, hidden];
  `steps`, the sequences' length, sets the chrono LSTM's initial forget bias."""
  if cell == "rnn":
    return keras.layers.SimpleRNN(hidden_size, activation="tanh", name="rnn")
  if cell == "irnn":
    # Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified
    # Linear Units" (arXiv:1504.00941): ReLU units, recurrent weights the identity and zero
    # biases, so that at the start a blank row carries the state forward unchanged.
    return keras.layers.SimpleRNN(hidden_size, activation="relu", name="irnn",
                                  recurrent_initializer=keras.initializers.Identity(),
                                  bias_initializer="zeros")
  # The steps are XLA's (JIT_COMPILE), which cannot compile cuDNN's kernels: on a GPU too the
  # LSTM and GRU run Keras' own loop (common/devices.py).
  no_cudnn = lstm.use_cudnn(devices.runs_cudnn(devices.visible(), "keras", "lstm", JIT_COMPILE))
  if cell == "gru":
    return keras.layers.GRU(hidden_size, name="gru", **no_cudnn)
  if cell == "lstm":
    # Forget bias 1 at the start (the tutorial's BasicLSTMCell(forget_bias=1.0)).
    return keras.layers.LSTM(hidden_size, unit_forget_bias=True, name="lstm", **no_cudnn)
  if cell == "chrono":
    return keras.layers.LSTM(hidden_size, bias_initializer=chrono_bias(hidden_size, steps),
                             unit_forget_bias=False, name="chrono", **no_cudnn)
  raise ValueError(f"unknown cell {cell!r}: one of {', '.join(CELLS)}")


def chrono_bias(hidden_size, steps):
  """The LSTM's initial bias of Tallec & Ollivier 2018 ("Can Recurrent Neural Networks Warp
  Time?", arXiv:1804.11188): forget bias log(u), u uniform in [1, steps - 1], input bias its
  negative, the rest 0. A unit then keeps its memory for about u steps at the start, where
  forget bias 1 keeps about 1 / (1 - sigmoid(1)) = 3.7 steps."""

  def initializer(shape, dtype=None):
    forget = tf.math.log(tf.random.uniform([hidden_size], 1.0, max(steps - 1.0, 1.0)))
    return tf.concat([-forget, forget, tf.zeros([2 * hidden_size])], 0)  # Keras' i, f, c, o

  return initializer


def build_model(cell, hidden_size, steps=data.IMAGE_SIZE):
  """Returns a Keras model: float32 sequences [batch, steps, 28] -> logits [batch, 10].

  Any number of steps: the same model reads every gap (`steps` only starts the chrono LSTM).
  """
  inputs = keras.Input(shape=(None, data.IMAGE_SIZE), name="rows")  # [batch, steps, 28]
  # [batch, hidden], after the last step
  state = recurrent_layer(cell, hidden_size, steps)(inputs)
  logits = keras.layers.Dense(data.NUM_CLASSES, name="logits")(state)  # [batch, 10]
  return keras.Model(inputs, logits, name=f"gap_{cell}")


def input_gradient_norms(model, inputs, labels):
  """||dL/dx_t|| at each step, averaged over a batch, indexed by distance from the end.

  Args:
    model: a Keras model, float32 [batch, steps, features] -> logits [batch, classes].
    inputs: float32 [batch, steps, features].
    labels: int [batch], the classes.

  Returns:
    float numpy array [steps]: entry k is the mean over the batch of the norm, over the
    features, of d(loss_i)/d(x_i,t) at t = steps - 1 - k (k = 0: the last step).
  """
  inputs = tf.convert_to_tensor(inputs, tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(inputs)
    logits = model(inputs, training=False)  # [batch, classes]
    # Summed, not averaged: example i's input reaches only its own loss, so this gradient
    # at x_i is d(loss_i)/d(x_i), not that divided by the batch size.
    loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True))
  gradients = tape.gradient(loss, inputs)  # [batch, steps, features]
  norms = tf.reduce_mean(tf.norm(gradients, axis=-1), axis=0)  # [steps]
  return norms.numpy()[::-1]


# --- One run --------------------------------------------------------------------------------


def make_steps(model, optimizer):
  """Returns (train_step, eval_step), each (sequences, labels) -> batch sums, compiled.

  The train step adds the gradients' global norm before clipping, to watch the explosions.
  """

  def train_step(sequences, labels):
    with tf.GradientTape() as tape:
      logits = model(sequences, training=True)  # [batch, 10]
      sums = batch_sums(labels, logits)
      loss = sums["loss"] / tf.cast(sums["count"], tf.float32)  # the mean over the batch
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(gradients, model.trainable_variables)  # clipped to global_clipnorm first
    return dict(sums, grad_norm=tf.linalg.global_norm(gradients))

  def eval_step(sequences, labels):
    return batch_sums(labels, model(sequences, training=False))

  return (tf.function(train_step, jit_compile=JIT_COMPILE),
          tf.function(eval_step, jit_compile=JIT_COMPILE))


def evaluate(eval_step, images, labels, gap):
  """Returns {'loss': mean NLL, 'accuracy': correct / seen, 'examples': seen} over a split."""
  loss, accuracy = Mean(), Mean()
  for sequences, batch_labels in gap_batches(images, labels, gap, EVAL_BATCH_SIZE):
    sums = eval_step(sequences, batch_labels)
    loss.update(sums["loss"], sums["count"])
    accuracy.update(sums["correct"], sums["count"])
  return {"loss": loss.result(), "accuracy": accuracy.result(), "examples": int(accuracy.count)}


class GapState(training_state.TrainingState):
  """A run's training state: also its sums of correct answers, examples and gradient norms."""

  SUMS = {"loss": "epoch_loss", "correct": "epoch_correct", "count": "epoch_seen",
          "grad_norm": "epoch_grad_norm"}

  def __init__(self):
    super().__init__()
    for variable in ("epoch_correct", "epoch_seen", "epoch_grad_norm"):
      setattr(self, variable, tf.Variable(0.0, dtype=tf.float64))


class GapTask(loop.Task):
  """One (cell, gap) on the loop: a single epoch of config.train_steps shuffled batches, a
  line every LOG_EVERY_STEPS with the means over those steps, the test set at the end."""
  epochs = 1

  def __init__(self, cell, gap, config, mnist, model, steps, state, manager, sweep_eta, grads):
    self.cell, self.gap, self.config, self.mnist, self.model = cell, gap, config, mnist, model
    self.state, self.manager, self.sweep_eta = state, manager, sweep_eta
    self.train_fn, self.eval_fn = steps
    self.grad_batch, self.grad_norms_init = grads
    self.steps_per_epoch = config.train_steps
    self.options = loop.RunOptions(log_every_steps=LOG_EVERY_STEPS)
    self.metrics_file = "result.json"
    self.window = None  # (sums, time, step) at the last progress line
    self.last = {}  # the means of the last line

  def start_epoch(self, epoch):
    self.window = (self.state.epoch_sums(), time.perf_counter(), int(self.state.step.numpy()))
    return self.config.learning_rate

  def batches(self, epoch, start):
    return gap_batches(*self.mnist["train"], self.gap, self.config.batch_size,
                       seed=self.config.seed).take(self.config.train_steps).skip(start)

  def train_step(self, batch):
    return self.train_fn(*batch)

  def count(self, steps, sums):
    return float(sums["count"])

  def log_progress(self, epoch, step, sums, learning_rate, rate, eta):
    """Logs the means over the steps since the last line (not the whole run's)."""
    (before, since, since_step), now = self.window, time.perf_counter()
    window = {name: float(sums[name] - before[name]) for name in sums}
    values = {"loss": window["loss"] / window["count"],
              "accuracy": window["correct"] / window["count"],
              "grad_norm": window["grad_norm"] / (step - since_step)}
    log(LOG_LINE.format(
        cell=self.cell, gap=self.gap, step=step, steps=self.config.train_steps,
        loss=values["loss"], accuracy=100 * values["accuracy"], grad_norm=values["grad_norm"],
        rate=window["count"] / max(now - since, 1e-9), eta=eta,
        sweep_eta=format_seconds(self.sweep_eta(step))))
    self.window, self.last = (sums, now, step), values
    return values

  def end_epoch(self, epoch, learning_rate, sums, rate):
    """The last line's means (the whole run's if it resumed after its last step)."""
    return {}, {"train_loss": self.last.get("loss", sums["loss"] / sums["count"]),
                "train_accuracy": self.last.get("accuracy", sums["correct"] / sums["count"]),
                "examples_per_second": rate}

  def finish(self, history, summaries):
    config = self.config
    test = evaluate(self.eval_fn, *self.mnist["test"], self.gap)
    summaries.scalars("test", {"loss": test["loss"], "accuracy": test["accuracy"]},
                      config.train_steps)
    trained = history[-1] if history else {}
    return {
        "cell": self.cell, "gap": self.gap, "sequence_length": self.gap + data.IMAGE_SIZE,
        "test_accuracy": test["accuracy"], "test_loss": test["loss"],
        "test_examples": test["examples"], "train_steps": config.train_steps,
        "train_loss": trained.get("train_loss"), "train_accuracy": trained.get("train_accuracy"),
        "train_seconds": trained.get("wall_seconds"), "seconds": self.state.elapsed(),
        "grad_norms_init": self.grad_norms_init,
        "grad_norms_trained": input_gradient_norms(self.model, *self.grad_batch).tolist(),
        "config": dataclasses.asdict(config),
    }


def run_one(cell, gap, config, mnist, run_dir, sweep_eta=lambda step: float("inf")):
  """Trains and measures one (cell, gap) on the loop; writes RUN_DIR/result.json last.

  Also writes TensorBoard scalars under RUN_DIR/train and RUN_DIR/test, and checkpoints: a
  run stopped part way resumes where it stopped.

  Args:
    cell: one of CELLS.
    gap: all-zero rows after each image.
    config: a GapConfig.
    mnist: {'train': (images, labels), 'test': (images, labels)}, uint8 arrays.
    run_dir: this run's directory.
    sweep_eta: called with the steps done in this run, returns the sweep's time left.

  Returns:
    The result written to result.json.
  """
  run_dir = pathlib.Path(run_dir)
  keras.utils.set_random_seed(config.seed)  # the same start for a cell at every gap
  model = build_model(cell, config.hidden_size, data.IMAGE_SIZE + gap)
  optimizer = keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clip_norm)
  optimizer.build(model.trainable_variables)  # slots exist before restore, so they restore
  grad_batch = gradient_batch(mnist, gap, config.grad_examples)
  loop.check_config(run_dir, config)
  grad_norms_init = _initial_gradient_norms(model, grad_batch, run_dir)
  state = GapState()
  manager, _ = storage.checkpoint_manager(state.checkpoint(model, optimizer), run_dir)
  state.restart_clock()
  task = GapTask(cell, gap, config, mnist, model, make_steps(model, optimizer), state, manager,
                 sweep_eta, (grad_batch, grad_norms_init))
  return loop.run(task, distribute.ChiefDir(tf.distribute.get_strategy(), run_dir))


def _initial_gradient_norms(model, grad_batch, run_dir):
  """||dL/dx_t|| of the untrained model, measured once and kept for a resumed run."""
  path = run_dir / "grad_norms_init.json"
  if path.exists():
    return json.loads(path.read_text())
  norms = input_gradient_norms(model, *grad_batch).tolist()
  storage.write_json(path, norms)
  return norms


# --- The sweep ------------------------------------------------------------------------------


def parse_cells(values):
  """--cells' words -> cell names, in order, once each ('lstm,,gru' is 'lstm,gru')."""
  return list(dict.fromkeys(value for value in values if value))


def parse_gaps(values):
  """--gaps' words -> gap lengths, ascending, once each; UserError for a word not a number."""
  try:
    return sorted({int(value) for value in values if value})
  except ValueError:
    raise UserError(f"--gaps={','.join(values)}: give whole numbers, e.g. --gaps=0,50,100") \
        from None


def check_request(config, cells, gaps, model_dir):
  """Raises UserError for settings that cannot make a sweep, before anything is written."""
  unknown = [cell for cell in cells if cell not in CELLS]
  if unknown:
    raise UserError(f"unknown cell {unknown[0]!r} in --cells: choose from {', '.join(CELLS)}")
  if not cells:
    raise UserError(f"--cells is empty: give one or more of {','.join(CELLS)}")
  if not gaps:
    raise UserError("--gaps is empty: give one or more gap lengths, e.g. --gaps=0,100")
  if min(gaps) < 0:
    raise UserError(f"--gaps has {min(gaps)}: a gap is a number of blank rows, 0 or more")
  for name in ("train_steps", "hidden_size", "batch_size"):
    if getattr(config, name) < 1:
      raise UserError(f"--{name} is {getattr(config, name)}: it must be 1 or more")
  if not config.learning_rate > 0:
    raise UserError(f"--learning_rate is {config.learning_rate}: it must be positive")
  model_dir = pathlib.Path(model_dir)
  if model_dir.exists() and not model_dir.is_dir():
    raise UserError(f"--model_dir {model_dir} is a file, not a directory: pass a directory")
  check_finished_runs(config, model_dir)


def finished_runs(model_dir):
  """{(cell, gap): result} of every run whose result.json is in MODEL_DIR/runs."""
  results = {}
  for path in sorted(pathlib.Path(model_dir).glob("runs/*/result.json")):
    try:
      result = json.loads(path.read_text())
      results[(result["cell"], result["gap"])] = result
    except (ValueError, KeyError) as e:
      raise UserError(f"{path} is not a result this command wrote ({type(e).__name__}): "
                      "remove its directory to rerun that run") from None
  return results


def check_finished_runs(config, model_dir):
  """Raises UserError if MODEL_DIR holds runs of other settings: gap.json would mix them."""
  wanted = dataclasses.asdict(config)
  for (cell, gap), result in finished_runs(model_dir).items():
    differ = [f"--{name}={result['config'].get(name)}" for name in wanted
              if result["config"].get(name) != wanted[name]]
    if differ:
      raise UserError(f"{model_dir} holds runs trained with other settings ({run_name(cell, gap)}"
                      f": {' '.join(differ)}): pass those flags, or a new --model_dir")


def sweep_clock(todo, config):
  """Returns sweep_eta(index, step): the time left when run todo[index] has done `step` steps.

  The work of a run is counted as train steps times sequence length: the time of a step
  grows with the length, whatever the cell.
  """
  work = [config.train_steps * (gap + data.IMAGE_SIZE) for _, gap in todo]
  progress = Progress(sum(work))

  def sweep_eta(index, step):
    return progress.eta(sum(work[:index]) + step * (todo[index][1] + data.IMAGE_SIZE))

  return sweep_eta


def run_sweep(config, cells, gaps, model_dir, data_dir):
  """Runs every (cell, gap) not yet finished in MODEL_DIR, then rebuilds the report.

  Gaps outer, cells inner: the first runs finished show every cell, and the sweep's time
  left is estimated from a mix of cells like the rest's.

  Args:
    config: a GapConfig.
    cells: names from CELLS.
    gaps: gap lengths, 0 or more.
    model_dir: MODEL_DIR; MODEL_DIR/runs/<cell>_gap<gap>/ holds each run's files.
    data_dir: holds the MNIST IDX files (or tensorflow-datasets' cache).

  Returns:
    The report written to MODEL_DIR/gap.json.
  """
  check_request(config, cells, gaps, model_dir)
  model_dir = pathlib.Path(model_dir)
  done = finished_runs(model_dir)
  todo = []
  for gap in gaps:
    for cell in cells:
      if (cell, gap) in done:
        log("skipping %s gap %d: already finished (%s)", cell, gap,
            model_dir / "runs" / run_name(cell, gap) / "result.json")
      else:
        todo.append((cell, gap))
  if todo:
    mnist = data.load(data_dir)
    sweep_eta = sweep_clock(todo, config)
    for index, (cell, gap) in enumerate(todo):
      result = run_one(cell, gap, config, mnist, model_dir / "runs" / run_name(cell, gap),
                       lambda step, index=index: sweep_eta(index, step))
      log("%s gap %d: test accuracy %.2f%%, test loss %.4f, in %s", cell, gap,
          100 * result["test_accuracy"], result["test_loss"], format_seconds(result["seconds"]))
  return write_report(model_dir)


# --- The report -----------------------------------------------------------------------------


def write_report(model_dir):
  """Writes MODEL_DIR/gap.json and gap.png from every finished run, and the figure to
  TensorBoard (an image summary in MODEL_DIR); logs the accuracy table. Returns the report."""
  model_dir = pathlib.Path(model_dir)
  runs = sorted(finished_runs(model_dir).values(),
                key=lambda run: (CELLS.index(run["cell"]), run["gap"]))
  report = {
      "task": "MNIST rows, then `gap` all-zero rows; classify from the state after the last",
      "chance_accuracy": CHANCE,
      "optimizer": "Adam, gradients clipped to global norm config.clip_norm, every cell",
      "grad_norms": "||dL/dx_t|| per step, mean over the first grad_examples test images, "
                    "index = distance from the last step",
      "accuracy": {cell: {str(run["gap"]): run["test_accuracy"] for run in runs
                          if run["cell"] == cell} for cell in CELLS},
      "runs": runs,
  }
  report["accuracy"] = {cell: row for cell, row in report["accuracy"].items() if row}
  storage.write_json(model_dir / "gap.json", report)
  png = plot(runs, model_dir / "gap.png")
  image_summary(model_dir, png, step=len(runs))
  log_table(runs)
  log("wrote %s and %s (%d runs)", model_dir / "gap.json", model_dir / "gap.png", len(runs))
  return report


def log_table(runs):
  """Logs test accuracy (%), one row per cell, one column per gap."""
  gaps = sorted({run["gap"] for run in runs})
  log("test accuracy (%)  " + "".join(f"gap {gap:<5d}" for gap in gaps))
  for cell in CELLS:
    row = {run["gap"]: run["test_accuracy"] for run in runs if run["cell"] == cell}
    if row:
      log(f"{cell:<18s} " + "".join(f"{100 * row[gap]:<9.2f}" if gap in row else f"{'-':<9s}"
                                    for gap in gaps))


def plot(runs, path):
  """Draws the two panels to `path` (PNG) atomically; returns the PNG bytes.

  Left: test accuracy against gap, one line per cell, chance marked. Right: for the largest
  gap, ||dL/dx_t|| against distance from the end, log scale; solid after training, dashed at
  initialisation.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel: only the report needs it
  matplotlib.use("Agg")  # files only: no display
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel

  figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5))
  colours = dict(zip(CELLS, ("tab:red", "tab:orange", "tab:green", "tab:blue", "tab:purple")))
  _plot_accuracy(left, runs, colours)
  _plot_gradients(right, runs, colours)
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=100)
  pyplot.close(figure)
  _write_bytes(path, buffer.getvalue())
  return buffer.getvalue()


def _plot_accuracy(axes, runs, colours):
  for cell in CELLS:
    points = sorted((run["gap"], 100 * run["test_accuracy"]) for run in runs
                    if run["cell"] == cell)
    if points:
      axes.plot(*zip(*points), "o-", color=colours[cell], label=cell)
  axes.axhline(100 * CHANCE, color="grey", linestyle=":", label="chance (10%)")
  axes.set(xlabel="gap (blank rows after the image)", ylabel="test accuracy (%)", ylim=(0, 100),
           xticks=sorted({run["gap"] for run in runs}), title="Carrying the digit across the gap")
  axes.legend()


def _plot_gradients(axes, runs, colours):
  gap = max(run["gap"] for run in runs)
  for run in (run for run in runs if run["gap"] == gap):
    for key, style, label in (("grad_norms_trained", "-", "trained"),
                              ("grad_norms_init", "--", "at init")):
      norms = np.array(run[key])
      # An exactly zero gradient (dead ReLUs, underflow) has no place on a log scale.
      axes.plot(np.where(norms > 0, norms, np.nan), style, color=colours[run["cell"]],
                label=f"{run['cell']} {label}")
  axes.axvspan(gap, gap + data.IMAGE_SIZE - 1, color="grey", alpha=0.15,
               label="the image's rows")
  axes.set(xlabel="distance from the last step (a line ends where the gradient is exactly 0)",
           ylabel="||dL/dx_t||", yscale="log",
           title=f"Gradient reaching each input, gap {gap}")
  axes.legend(fontsize="small", ncol=2)


def _write_bytes(path, contents):
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}-tmp")
  tmp.write_bytes(contents)
  tmp.replace(path)


def image_summary(model_dir, png, step):
  """Writes the figure (PNG bytes) to TensorBoard's Images tab, in MODEL_DIR's own events."""
  image = tf.image.decode_png(png, channels=3)[tf.newaxis]  # [1, height, width, 3] uint8
  writer = tf.summary.create_file_writer(str(model_dir))
  with writer.as_default():
    tf.summary.image("gap", image, step=step)
  writer.close()
