"""Trains, evaluates and exports the MNIST RNN: `train_and_evaluate(config, model_dir,
data_dir)`. The command line is `mnist_rnn.main` (python -m mnist_rnn.main).
"""
import dataclasses
import math
import time

import keras
import tensorflow as tf

from common import distribute, precision, storage, training_state
from common.metrics import Mean
from common.progress import Progress, Summaries, format_seconds, log
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


def run_epoch(step_fn, batches, num_steps, split, epoch, config, lr, log_every, resume=None,
              save=None):
  """Runs `step_fn` over `batches`, logging LOG_LINE every `log_every` steps and at the end.

  Args:
    resume: (steps done, loss Mean, accuracy Mean) to continue a checkpointed epoch.
    save: called as save(step, loss, accuracy) every config.checkpoint_every_steps steps.

  Returns:
    {'loss': total NLL / seen, 'accuracy': correct / seen, 'examples': seen,
     'seconds': elapsed, 'examples_per_second': seen / elapsed}.
  """
  start, loss, accuracy = resume or (0, Mean(), Mean())
  seen_before = accuracy.count
  progress = Progress(num_steps, done=start)
  for step, (batch, global_count) in enumerate(batches, start + 1):
    sums = step_fn(batch, global_count)
    loss.update(sums["loss"], sums["count"])
    accuracy.update(sums["correct"], sums["count"])
    if step % log_every == 0 or step == num_steps:
      log(LOG_LINE.format(epoch=epoch, epochs=config.epochs, split=split, step=step,
                          steps=num_steps, loss=loss.result(), accuracy=100 * accuracy.result(),
                          lr=lr, rate=(accuracy.count - seen_before) / progress.elapsed(),
                          eta=format_seconds(progress.eta(step))))
    if save and config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0 \
        and step < num_steps:
      save(step, loss, accuracy)
  seconds = progress.elapsed()
  return {"loss": loss.result(), "accuracy": accuracy.result(), "examples": accuracy.count,
          "seconds": seconds,
          "examples_per_second": (accuracy.count - seen_before) / max(seconds, 1e-9)}


class TrainState(training_state.TrainingState):
  """mnist_rnn's training state: also the epoch's accuracy sums and the training throughput.

  `epoch_loss` and `epoch_correct` sum over the epoch's `epoch_seen` examples so far.
  """

  def __init__(self):
    super().__init__()
    self.epoch_correct = tf.Variable(0.0, dtype=tf.float64)
    self.epoch_seen = tf.Variable(0.0, dtype=tf.float64)
    self.train_examples = tf.Variable(0.0, dtype=tf.float64)  # over all epochs
    self.train_seconds = tf.Variable(0.0, dtype=tf.float64)  # inside training epochs only

  def resume(self):
    """(steps done, loss Mean, accuracy Mean) of the epoch in progress."""
    seen = float(self.epoch_seen.numpy())
    return (int(self.step.numpy()), Mean(float(self.epoch_loss.numpy()), seen),
            Mean(float(self.epoch_correct.numpy()), seen))

  def record_steps(self, step, loss, accuracy, train_seconds):
    """Records the epoch's position and sums after `step` steps, and the time they took."""
    self.train_examples.assign_add(accuracy.count - float(self.epoch_seen.numpy()))
    self.train_seconds.assign_add(train_seconds)
    self.step.assign(step)
    self.epoch_loss.assign(loss.total)
    self.epoch_correct.assign(accuracy.total)
    self.epoch_seen.assign(accuracy.count)
    self.tick()

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


def load_examples(config, data_dir):
  """Returns (train examples, test examples, train steps per epoch, test steps)."""
  mnist = data.synthetic(config.seed) if config.use_synthetic_data else data.load(data_dir)
  (train_images, train_labels), (test_images, test_labels) = mnist["train"], mnist["test"]
  steps_per_epoch = math.ceil(len(train_labels) / config.batch_size)
  if config.max_steps_per_epoch:
    steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
  return (data.examples(train_images, train_labels), data.examples(test_images, test_labels),
          steps_per_epoch, math.ceil(len(test_labels) / config.batch_size))


def build_or_restore(config, chief, strategy):
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
      state.checkpoint(model, optimizer), chief.model_dir, save_dir=chief.path,
      legacy=state.legacy_checkpoint(model, optimizer))
  if restored:
    log("resumed from %s: %d of %d epochs done, %d steps into the next", restored,
        int(state.epoch), config.epochs, int(state.step))
  return model, optimizer, state, manager


def train_and_evaluate(config, model_dir, data_dir=None, strategy=None):
  """Trains `config.epochs` epochs (resuming MODEL_DIR/checkpoints), evaluates, exports.

  Writes under MODEL_DIR: checkpoints/ (every epoch, and every config.checkpoint_every_steps),
  train/ and test/ (TensorBoard scalars), export/ (the SavedModel) and, last, metrics.json.
  Under a multi-worker `strategy` every worker runs this; only the chief's files are kept.

  Args:
    config: a `configs.Config`.
    model_dir: output directory; running again with the same one resumes.
    data_dir: holds the MNIST IDX files (or tensorflow-datasets' cache); unused with
      `config.use_synthetic_data`.
    strategy: a tf.distribute strategy (default: TensorFlow's default, one device).

  Returns:
    The metrics written to metrics.json.
  """
  started = time.perf_counter()  # wall_seconds counts loading and building too
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.ChiefDir(strategy, model_dir)
  config = dataclasses.replace(config, precision=precision.resolve(config.precision))
  log("precision %s; LSTM cell: %s", config.precision,
      "one op per step, compiled for this CPU" if uses_cell_op(config) else "TensorFlow ops")
  keras.utils.set_random_seed(config.seed)
  train_examples, test_examples, steps_per_epoch, test_steps = load_examples(config, data_dir)
  model, optimizer, state, manager = build_or_restore(config, chief, strategy)
  state.restart_clock(since=started)
  train_step, eval_step = make_steps(model, optimizer, config.jit_compile, strategy)
  summaries = Summaries(str(chief.path))

  def evaluate(epoch):
    batches = distribute.distribute_batches(
        strategy, lambda: data.batches(test_examples, config.batch_size))
    return run_epoch(eval_step, batches, test_steps, "test", epoch, config,
                     configs.learning_rate(config, epoch), log_every=test_steps)

  test = None
  for epoch in range(int(state.epoch) + 1, config.epochs + 1):
    lr = configs.learning_rate(config, epoch)
    optimizer.learning_rate = lr
    train = train_epoch(train_step, train_examples, steps_per_epoch, epoch, config, lr, state,
                        manager, strategy)
    test = evaluate(epoch)
    summaries.scalars("train", {"loss": train["loss"], "accuracy": train["accuracy"],
                                "learning_rate": lr,
                                "examples_per_second": train["examples_per_second"]}, epoch)
    summaries.scalars("test", {"loss": test["loss"], "accuracy": test["accuracy"]}, epoch)
    state.finish_epoch()
    manager.save()
  summaries.close()
  if test is None:  # nothing left to train: a finished run re-evaluates and re-exports
    log("nothing to train: %d of %d epochs already done", int(state.epoch), config.epochs)
    test = evaluate(int(state.epoch))
  export.export(model, chief.path / "export")
  state.tick()
  metrics = write_metrics(config, chief, state, test, int(optimizer.iterations.numpy()))
  chief.clean()
  return metrics


def train_epoch(train_step, train_examples, num_steps, epoch, config, lr, state, manager,
                strategy):
  """Trains one epoch from the checkpointed position; returns run_epoch's dict."""
  start, loss, accuracy = state.resume()
  timer = [time.perf_counter()]

  def save(step, loss, accuracy):
    now = time.perf_counter()
    state.record_steps(step, loss, accuracy, train_seconds=now - timer[0])
    timer[0] = now
    manager.save()

  # A shuffle seed per (seed, epoch): a resumed run sees the order an uninterrupted one would,
  # and every worker the same global batches.
  batches = distribute.distribute_batches(strategy, lambda: data.batches(
      train_examples, config.batch_size, 1000 * config.seed + epoch).take(num_steps).skip(start))
  train = run_epoch(train_step, batches, num_steps, "train", epoch, config, lr,
                    config.log_every_steps, resume=(start, loss, accuracy), save=save)
  state.record_steps(num_steps, loss, accuracy, train_seconds=time.perf_counter() - timer[0])
  return train


def write_metrics(config, chief, state, test, train_steps):
  """Writes metrics.json (on the chief; other workers to their scratch directory)."""
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
  storage.write_json(chief.path / "metrics.json", metrics)
  log("test accuracy %.2f%%, test loss %.4f after %d epochs; %s", 100 * test["accuracy"],
      test["loss"], metrics["epochs"], f"wrote {chief.path / 'metrics.json'}" if chief.chief
      else "the chief writes the results")
  return metrics
