"""Trains, evaluates and exports the MNIST RNN on the shared loop (common/loop.py):
`train_and_evaluate(config, model_dir, options)`. What is mnist_rnn's own is here: the steps,
the accuracy sums (`TrainState`), the log line, the test evaluation after every epoch and the
export (`ClassifierTask`). The command line is `mnist_rnn.main` (python -m mnist_rnn.main).
"""
import dataclasses
import math
import time

import keras
import tensorflow as tf

from common import devices, distribute, loop, storage, training_state
from common.metrics import Mean
from common.progress import Progress, format_seconds, log
from mnist_rnn import configs, data, export
from mnist_rnn.model import build_model, uses_cell_op

LOG_LINE = ("epoch {epoch:3d}/{epochs:<3d} {split:<5s} {step:5d}/{steps:<5d} loss {loss:7.4f}  "
            "accuracy {accuracy:7.3f}%  lr {lr:.1e}  {rate:7.0f} examples/s  eta {eta}")


def make_optimizer(config):
  optimizer = keras.optimizers.Adam(config.learning_rate)
  if config.precision == "mixed_float16":  # float16 gradients underflow without loss scaling
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def batch_sums(labels, logits):
  """Sums over a batch, to be divided once per epoch: summed NLL, number correct, count."""
  nll = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)  # [batch]
  correct = tf.equal(tf.argmax(logits, axis=-1), labels)
  return {"loss": tf.reduce_sum(nll), "correct": tf.reduce_sum(tf.cast(correct, tf.float32)),
          "count": tf.shape(labels)[0]}


def make_train_step(model, optimizer, jit_gradients=False):
  """Returns train_step(images, labels, global_count=None) -> batch sums; one Adam step.

  The loss is the mean over the global batch (the tutorial's): under tf.distribute a
  replica holds `images`, some rows of a batch of `global_count`, and the optimizer sums
  the replicas' gradients. `jit_gradients` compiles the forward and backward pass with XLA.
  """

  def gradients(images, labels, global_count):
    with tf.GradientTape() as tape:
      logits = model(images, training=True)  # [batch, 10]
      sums = batch_sums(labels, logits)
      loss = sums["loss"] / global_count  # the tutorial's mean loss
      scaled_loss = optimizer.scale_loss(loss)  # unchanged unless mixed_float16
    return tape.gradient(scaled_loss, model.trainable_variables), sums

  if jit_gradients:
    gradients = tf.function(gradients, jit_compile=True)

  def train_step(images, labels, global_count=None):
    if global_count is None:
      global_count = tf.shape(labels)[0]
    grads, sums = gradients(images, labels, tf.cast(global_count, tf.float32))
    optimizer.apply(grads, model.trainable_variables)  # all-reduces across replicas
    return sums

  return train_step


def make_eval_step(model):
  """Returns eval_step(images, labels, global_count=None) -> batch sums."""

  def eval_step(images, labels, global_count=None):
    del global_count  # sums need no normalisation
    return batch_sums(labels, model(images, training=False))

  return eval_step


def make_steps(model, optimizer, jit_compile=False, strategy=None):
  """The train and eval steps as tf.function graphs, run on every replica of `strategy`.

  Each takes a batch of (images, labels) rows per replica and the global batch size, and
  returns the batch sums added over replicas. XLA compiles the whole step on one device;
  across replicas, the per-replica math only (the all-reduce stays outside XLA).
  """
  strategy = strategy or tf.distribute.get_strategy()
  whole_step_jit = jit_compile and distribute.single_device(strategy)
  replica_steps = (make_train_step(model, optimizer, jit_compile and not whole_step_jit),
                   make_eval_step(model))

  def distributed(replica_step):
    def step(batch, global_count):
      sums = strategy.run(replica_step, args=(*batch, global_count))
      return {name: distribute.sum_replicas(strategy, value) for name, value in sums.items()}
    return tf.function(step, jit_compile=whole_step_jit)

  return tuple(distributed(replica_step) for replica_step in replica_steps)


class TrainState(training_state.TrainingState):
  """mnist_rnn's training state: also the epoch's accuracy sums and the training throughput.

  `epoch_loss` and `epoch_correct` sum over the epoch's `epoch_seen` examples so far.
  """

  SUMS = {"loss": "epoch_loss", "correct": "epoch_correct", "count": "epoch_seen"}

  def __init__(self):
    super().__init__()
    self.epoch_correct = tf.Variable(0.0, dtype=tf.float64)
    self.epoch_seen = tf.Variable(0.0, dtype=tf.float64)
    self.train_examples = tf.Variable(0.0, dtype=tf.float64)  # over all epochs
    self.train_seconds = tf.Variable(0.0, dtype=tf.float64)  # inside training epochs only
    self.timer = time.perf_counter()

  def resume(self):
    """(steps done, loss Mean, accuracy Mean) of the epoch in progress."""
    seen = float(self.epoch_seen.numpy())
    return (int(self.step.numpy()), Mean(float(self.epoch_loss.numpy()), seen),
            Mean(float(self.epoch_correct.numpy()), seen))

  def start_timing(self):
    """Counts training time from now (an epoch's start: evaluations are not training)."""
    self.timer = time.perf_counter()

  def record(self, step, sums):
    """Also counts the examples and the training time since the last record."""
    now = time.perf_counter()
    self.train_examples.assign_add(float(sums["count"]) - float(self.epoch_seen.numpy()))
    self.train_seconds.assign_add(now - self.timer)
    self.timer = now
    super().record(step, sums)

  def finish_epoch(self):
    super().finish_epoch()
    self.epoch_correct.assign(0.0)
    self.epoch_seen.assign(0.0)

  def legacy_checkpoint(self, model, optimizer):
    """The layout of run directories from before the shared names: these variables at the
    top level, beside the model and optimizer."""
    names = ("epoch", "step", "epoch_loss", "epoch_correct", "epoch_seen", "train_examples",
             "train_seconds", "wall_seconds")
    return tf.train.Checkpoint(model=model, optimizer=optimizer,
                               **{name: getattr(self, name) for name in names})


class ClassifierTask(loop.Task):
  """The MNIST classifier on the loop: shuffled batches, the tutorial's log line, the whole
  test set after every epoch."""

  def __init__(self, config, options, model, optimizer, state, manager, steps, examples,
               strategy, out_dir):
    self.config, self.options, self.model, self.optimizer = config, options, model, optimizer
    self.state, self.manager, self.strategy, self.out_dir = state, manager, strategy, out_dir
    self.train_fn, self.eval_fn = steps
    self.train_examples, self.test_examples, self.steps_per_epoch, self.test_steps = examples
    self.epochs = config.epochs
    self.test = None  # the last evaluation

  def start_epoch(self, epoch):
    lr = configs.learning_rate(self.config, epoch)
    self.optimizer.learning_rate = lr
    self.state.start_timing()
    return lr

  def batches(self, epoch, start):
    # A shuffle seed per (seed, epoch): a resumed run sees the order an uninterrupted one
    # would, and every worker the same global batches.
    config = self.config
    return distribute.distribute_batches(self.strategy, lambda: data.batches(
        self.train_examples, config.batch_size, 1000 * config.seed + epoch + 1)
        .take(self.steps_per_epoch).skip(start))

  def train_step(self, batch):
    return self.train_fn(*batch)

  def count(self, steps, sums):
    return float(sums["count"])

  def log_progress(self, epoch, step, sums, learning_rate, rate, eta):
    log_line(self.config, epoch, "train", step, self.steps_per_epoch, sums, learning_rate,
             rate, eta)

  def end_epoch(self, epoch, learning_rate, sums, rate):
    train = {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}
    self.test = self.evaluate(epoch)
    test = {"loss": self.test["loss"], "accuracy": self.test["accuracy"]}
    row = {"learning_rate": learning_rate, "examples_per_second": rate,
           **{f"train_{name}": value for name, value in train.items()},
           **{f"test_{name}": value for name, value in test.items()}}
    return {"train": {**train, "learning_rate": learning_rate, "examples_per_second": rate},
            "test": test}, row

  def evaluate(self, epoch):
    """The whole test set, logged as epoch `epoch`'s; returns its loss, accuracy, count."""
    batches = distribute.distribute_batches(
        self.strategy, lambda: data.batches(self.test_examples, self.config.batch_size))
    loss, accuracy = Mean(), Mean()
    progress = Progress(self.test_steps)
    for batch in batches:
      sums = self.eval_fn(*batch)
      loss.update(sums["loss"], sums["count"])
      accuracy.update(sums["correct"], sums["count"])
    log_line(self.config, epoch, "test", self.test_steps, self.test_steps,
             {"loss": loss.total, "correct": accuracy.total, "count": accuracy.count},
             configs.learning_rate(self.config, epoch),
             accuracy.count / max(progress.elapsed(), 1e-9), format_seconds(0))
    return {"loss": loss.result(), "accuracy": accuracy.result(), "examples": accuracy.count}

  def finish(self, history, summaries):
    """The SavedModel and the results (a finished run run again re-evaluates first)."""
    done = int(self.state.epoch.numpy())
    if self.test is None:
      log("nothing to train: %d of %d epochs already done", done, self.epochs)
      self.test = self.evaluate(done - 1)
    export.export(self.model, self.out_dir / "export")
    self.state.tick()
    return results(self.config, self.state, self.test, int(self.optimizer.iterations.numpy()))


def log_line(config, epoch, split, step, steps, sums, learning_rate, rate, eta):
  log(LOG_LINE.format(epoch=epoch + 1, epochs=config.epochs, split=split, step=step,
                      steps=steps, loss=float(sums["loss"]) / float(sums["count"]),
                      accuracy=100 * float(sums["correct"]) / float(sums["count"]),
                      lr=learning_rate, rate=rate, eta=eta))


def load_examples(config, options):
  """Returns (train examples, test examples, train steps per epoch, test steps)."""
  mnist = (data.synthetic(config.seed) if options.use_synthetic_data
           else data.load(options.data_dir))
  (train_images, train_labels), (test_images, test_labels) = mnist["train"], mnist["test"]
  steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
  if config.max_steps_per_epoch:
    steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
  return (data.examples(train_images, train_labels), data.examples(test_images, test_labels),
          steps_per_epoch, math.ceil(len(test_labels) / config.batch_size))


def build_or_restore(config, chief, strategy, options=loop.RunOptions()):
  """Builds the model, optimizer and TrainState, restoring MODEL_DIR/checkpoints' latest if any.

  Returns:
    (model, optimizer, state, checkpoint manager).
  """
  with strategy.scope():  # variables and optimizer slots mirrored on every replica
    model = build_model(config)
    optimizer = make_optimizer(config)
    optimizer.build(model.trainable_variables)  # slots exist before restore, so they restore
  state = TrainState()
  manager, restored = storage.checkpoint_manager(
      state.checkpoint(model, optimizer), chief.model_dir, options.keep_checkpoints,
      save_dir=chief.path, legacy=state.legacy_checkpoint(model, optimizer))
  if restored:
    log("resumed from %s: %d of %d epochs done, %d steps into the next", restored,
        int(state.epoch), config.epochs, int(state.step))
  return model, optimizer, state, manager


def train_and_evaluate(config, model_dir, options=loop.RunOptions(), strategy=None):
  """Trains `config.epochs` epochs (resuming MODEL_DIR/checkpoints), evaluates, exports.

  Writes under MODEL_DIR what common/loop.py lists: config.json, checkpoints/ (every epoch,
  and every options.checkpoint_every_steps), train/ and test/ (TensorBoard), history.json,
  export/ (the SavedModel) and, last, metrics.json. Under a multi-worker `strategy` every
  worker runs this; only the chief's files are kept.

  Args:
    config: a `configs` config.
    model_dir: output directory; running again with the same one resumes.
    options: a `common.loop.RunOptions`: the MNIST IDX files (or tensorflow-datasets'
      cache) in `data_dir`, unless `use_synthetic_data`.
    strategy: a tf.distribute strategy (default: TensorFlow's default, one device).

  Returns:
    The metrics written to metrics.json.
  """
  started = time.perf_counter()  # wall_seconds counts loading and building too
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.ChiefDir(strategy, model_dir)
  config = resolve(config, chief.model_dir, options)
  log("precision %s; LSTM cell: %s", config.precision,
      "one op per step, compiled for this CPU" if uses_cell_op(config) else "TensorFlow ops")
  keras.utils.set_random_seed(config.seed)
  examples = load_examples(config, options)
  loop.check_config(chief.model_dir, config, write=chief.chief)
  model, optimizer, state, manager = build_or_restore(config, chief, strategy, options)
  state.restart_clock(since=started)
  steps = make_steps(model, optimizer, config.jit_compile, strategy)
  task = ClassifierTask(config, options, model, optimizer, state, manager, steps, examples,
                        strategy, chief.path)
  return loop.run(task, chief)


def resolve(config, model_dir, options=loop.RunOptions(), hardware=None, quiet=False):
  """`config` as it runs on this hardware (common.devices.decide: the LSTM, XLA, the
  precision), logged with why unless `quiet`; config.json records it. Auto keeps the
  implementation a resumed run recorded. Raises UserError for settings that cannot run here."""
  hardware = hardware or devices.visible()
  trained = (loop.saved_config(model_dir) if model_dir else None) or {}
  decisions = devices.decide(config, hardware, options.jit_compile_given, trained.get("lstm"),
                             bfloat16_precision="mixed_bfloat16")
  if not quiet:
    log("on %s: %s", f"{len(hardware.gpus)} GPU(s)" if hardware.gpus else "the CPU",
        decisions.describe())
  return dataclasses.replace(config, lstm=decisions.lstm, jit_compile=decisions.jit_compile,
                             precision=decisions.precision)


def results(config, state, test, train_steps):
  """metrics.json's contents; logs the test accuracy."""
  train_seconds = float(state.train_seconds.numpy())
  metrics = {
      "test_accuracy": test["accuracy"],
      "test_loss": test["loss"],
      "test_examples": int(test["examples"]),
      "epochs": int(state.epoch.numpy()),
      "train_steps": train_steps,
      "train_examples": int(state.train_examples.numpy()),
      "train_examples_per_second": float(state.train_examples.numpy()) / train_seconds
                                   if train_seconds else None,
      "train_seconds": train_seconds,
      "wall_seconds": float(state.wall_seconds.numpy()),
      "config": dataclasses.asdict(config),
  }
  log("test accuracy %.2f%%, test loss %.4f after %d epochs", 100 * test["accuracy"],
      test["loss"], metrics["epochs"])
  return metrics
