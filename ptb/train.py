"""Trains, evaluates and exports the language model on the shared loop (common/loop.py):
`train_and_evaluate(config, model_dir, options)`. What is ptb's own is here: the steps
(`make_steps`), the carried LSTM state and dropout RNG (`TrainState`), the log lines, the
valid and exact test evaluations and the export (`LanguageModelTask`). The command line is
`ptb.main` (python -m ptb.main --model=small).
"""
import dataclasses
import math

import keras
import tensorflow as tf

from common import data_dir as data_dirs
from common import devices, distribute, loop, metrics, storage, training_state
from common.errors import UserError
from common.progress import log
from ptb import configs, data, evaluation, export
from ptb.clipping import clip_by_global_norm
from ptb.fast_loss import token_nll
from ptb.model import (BFLOAT16_MATMULS, ROW_GROUPS, PTBModel, recurrence_bound,
                       resolve_precision)
from ptb.optimizer import apply_gradients, make_optimizer, set_learning_rate

TEST_WINDOW = 50  # batch-1 test windows: the state is carried, so any length gives one number
LOG_LINE = "epoch %3d  %5.3f  perplexity %9.3f  lr %.4f  %6.0f %s/s  ETA %s"


@dataclasses.dataclass(frozen=True)
class RunOptions(loop.RunOptions):
  """The loop's RunOptions, and the data source only ptb has."""
  text_file: str = ""          # one text file, split 90/5/5 (ptb.data); wins over data_dir
  checkpoint_every_steps: int = 500


def make_steps(model, config, jit_compile=False, strategy=None, optimizer=None):
  """The train and eval step functions, compiled as tf.function graphs.

  train_step(inputs, targets, state, lr, seed) -> (summed NLL, final state)
  eval_step(inputs, targets, state) -> (summed NLL, final state)

  Under a tf.distribute `strategy` the inputs, targets and states are per-replica values
  (each replica's rows, `common.distribute`) and the NLL is summed over replicas.
  """
  strategy = strategy or tf.distribute.get_strategy()
  if model.bfloat16_matmuls and not jit_compile:
    raise UserError(f"{BFLOAT16_MATMULS} needs jit_compile: only XLA multiplies bfloat16 inputs "
                    "into float32 results")
  if model.cudnn and jit_compile:  # never cuDNN inside XLA (common.devices)
    raise ValueError("this PTBModel runs cuDNN's kernels, which XLA cannot compile: build it "
                     "with jit_compile=True, or make its steps without XLA")
  batch_size = config.batch_size
  with strategy.scope():
    model.create_variables()  # the step must see every variable it trains
  variables = model.trainable_variables

  def gradients(inputs, targets, state, seed, first_row):
    # `state` comes in as a plain tensor, so the gradient stops at the window's edge.
    with tf.GradientTape() as tape:
      rows = tf.stack([first_row, batch_size])  # this replica's rows of the global batch
      nll, state = model.nll(inputs, targets, state, dropout_seed=seed, rows=rows)
      # Summed over time steps, averaged over the (global) batch: the tutorial's
      # sequence_loss with average_across_timesteps=False, what makes learning rate 1.0 right.
      loss = nll / tf.cast(batch_size, tf.float32)
    return tape.gradient(loss, variables), nll, state

  # XLA compiles the whole step on one device; across replicas only the per-replica math,
  # with the all-reduce and the update outside it.
  whole_step_jit = jit_compile and distribute.single_device(strategy)
  if jit_compile and not whole_step_jit:
    gradients = tf.function(gradients, jit_compile=True)

  def replica_train_step(inputs, targets, state, lr, seed):
    grads, nll, state = gradients(inputs, targets, state, seed,
                                  distribute.replica_offset(batch_size))
    grads = distribute.all_reduce_sum(grads)  # each replica's share of the batch's gradient
    grads, _ = clip_by_global_norm(grads, config.max_grad_norm)
    apply_gradients(optimizer, variables, grads, lr)
    return nll, state

  def replica_eval_step(inputs, targets, state):
    logits, state = model(inputs, state)
    return token_nll(logits, targets), state

  def train_step(inputs, targets, state, lr, seed):
    nll, state = strategy.run(replica_train_step, args=(inputs, targets, state, lr, seed))
    return distribute.sum_replicas(strategy, nll), state

  def eval_step(inputs, targets, state):
    nll, state = strategy.run(replica_eval_step, args=(inputs, targets, state))
    return distribute.sum_replicas(strategy, nll), state

  return (tf.function(train_step, jit_compile=whole_step_jit),
          tf.function(eval_step, jit_compile=jit_compile and distribute.single_device(strategy)))


class TrainState(training_state.TrainingState):
  """ptb's training state: also the carried LSTM state of every row and the dropout RNG.

  `epoch_loss` sums the NLL of the epoch's tokens so far, so a resumed epoch reports the
  perplexity of all of it.
  """

  def __init__(self, model, config, seed):
    super().__init__()
    self.lstm_state = tf.Variable(model.zero_state(config.batch_size))
    self.rng = tf.random.Generator.from_seed(seed)

  def finish_epoch(self):
    super().finish_epoch()
    self.lstm_state.assign(tf.zeros_like(self.lstm_state))  # each epoch starts from zeros

  def legacy_checkpoint(self, model, optimizer=None):
    """The layout of run directories from before the shared names: everything under `train`,
    the loss sum named `train_nll`."""
    old = {"model": model, "epoch": self.epoch, "step": self.step,
           "lstm_state": self.lstm_state, "train_nll": self.epoch_loss, "rng": self.rng,
           "wall_seconds": self.wall_seconds}
    if optimizer is not None:
      old["optimizer"] = optimizer
    return tf.train.Checkpoint(train=tf.train.Checkpoint(**old))


class LanguageModelTask(loop.Task):
  """The language model on the loop: truncated-BPTT windows with the state carried across
  them, the tutorial's log lines, validation each epoch, exact test perplexity at the end."""

  def __init__(self, config, options, model, optimizer, state, manager, steps, ids, vocab,
               strategy, out_dir):
    self.config, self.options, self.model, self.optimizer = config, options, model, optimizer
    self.out_dir = out_dir  # MODEL_DIR on the chief, a scratch directory on other workers
    self.state, self.manager, self.ids, self.vocab = state, manager, ids, vocab
    self.train_fn, self.eval_fn = steps
    self.strategy = strategy
    self.windows = data.windows(ids["train"], config.batch_size, config.num_steps)
    self.epochs, self.steps_per_epoch = config.epochs, len(self.windows[0])
    self.tokens_per_step = config.batch_size * config.num_steps
    self.unit = "chars" if config.level == "char" else "words"

  def start_epoch(self, epoch):
    lr = configs.learning_rate(self.config, epoch)
    log("Epoch: %d Learning rate: %.3f", epoch + 1, lr)
    set_learning_rate(self.optimizer, lr)
    self.lr = tf.constant(lr, tf.float32)
    # Each replica carries the state of its own rows, [layers, 2, rows, hidden]; it enters
    # every step as a plain tensor, so the gradient stops at the window's edge.
    self.lstm = distribute.split_rows(self.strategy,
                                      tf.convert_to_tensor(self.state.lstm_state), axis=2)
    return lr

  def batches(self, epoch, start):
    inputs, targets = self.windows
    return distribute.distribute_batches(
        self.strategy,
        lambda: tf.data.Dataset.from_tensor_slices((inputs, targets)).skip(start).prefetch(2))

  def train_step(self, batch):
    (inputs, targets), _ = batch
    seed = self.state.rng.make_seeds(1)[:, 0]  # one seed for all replicas: global masks
    nll, self.lstm = self.train_fn(inputs, targets, self.lstm, self.lr, tf.cast(seed, tf.int32))
    return {"loss": nll}

  def count(self, steps, sums):
    return steps * self.tokens_per_step

  def log_due(self, step):
    every = self.options.log_every_steps or max(self.steps_per_epoch // 10, 1)
    return step % every == 10 % every  # the tutorial's: 10 steps in, then every tenth

  def log_progress(self, epoch, step, sums, learning_rate, rate, eta):
    loss = float(sums["loss"]) / self.count(step, sums)
    log(LOG_LINE, epoch + 1, step / self.steps_per_epoch, metrics.perplexity(loss, 1),
        learning_rate, rate, self.unit, eta)
    return {"loss": loss, f"{self.unit}_per_second": rate}

  def record(self, step, sums):
    self.state.lstm_state.assign(distribute.gather_rows(self.strategy, self.lstm, 2))
    super().record(step, sums)

  def end_epoch(self, epoch, learning_rate, sums, rate):
    train_nll = sums["loss"] / self.count(self.steps_per_epoch, sums)
    valid_nll = evaluation.evaluate(self.eval_fn, self.model, self.ids["valid"],
                                    self.config.batch_size, self.config.num_steps,
                                    self.strategy)
    train = evaluation.split_metrics(self.config, train_nll)
    valid = evaluation.split_metrics(self.config, valid_nll)
    for split, nll, values in (("Train", train_nll, train), ("Valid", valid_nll, valid)):
      log("Epoch: %d %s Perplexity: %.3f%s", epoch + 1, split, values["perplexity"],
          evaluation.bits(self.config, nll))
    row = {"learning_rate": learning_rate, "train_loss": train_nll,
           "train_perplexity": train["perplexity"], "valid_loss": valid_nll,
           "valid_perplexity": valid["perplexity"], f"{self.unit}_per_second": rate}
    return {"train": {**train, "learning_rate": learning_rate}, "valid": valid}, row

  def finish(self, history, summaries):
    """Exact test perplexity, the projector files, the SavedModel; returns the results."""
    config = self.config
    test_nll = evaluation.evaluate(self.eval_fn, self.model, self.ids["test"], 1, TEST_WINDOW,
                                   self.strategy)
    log("Test Perplexity: %.3f%s", metrics.perplexity(test_nll, 1),
        evaluation.bits(config, test_nll))
    summaries.scalars("test", evaluation.split_metrics(config, test_nll), config.epochs)
    export.write_projector(self.out_dir, self.model, self.vocab)
    export.export(self.model, self.vocab, self.out_dir / "export")
    last, rate = (history[-1] if history else {}), f"{self.unit}_per_second"
    results = {"test_loss": test_nll, "test_perplexity": metrics.perplexity(test_nll, 1),
               rate: _mean([row.get(rate) for row in history]),
               "epochs": config.epochs, "wall_seconds": self.state.elapsed(),
               "config": dataclasses.asdict(config), "precision": config.precision,
               "history": history}
    for split in ("train", "valid"):
      results.update({f"{split}_{name}": last.get(f"{split}_{name}")
                      for name in ("loss", "perplexity")})
    if config.level == "char":
      results.update({f"{split}_bits_per_char": results[f"{split}_loss"] / math.log(2)
                      for split in ("train", "valid", "test") if results[f"{split}_loss"]})
    return results


def load_data(options, config):
  """The three splits' ids and the vocabulary, each split checked to be long enough."""
  if options.use_synthetic_data:
    return data.synthetic(config.vocab_size, seed=config.seed)
  source = data_dirs.resolve(options.data_dir, "PTB_DATA_DIR", "ptb")
  text_file = data.resolve_text_file(options.text_file, options.data_dir, config.level)
  ids, vocab = data.load(source, text_file, config.level, config.vocab_size)
  name = text_file or source
  for split, batch_size, num_steps in (("train", config.batch_size, config.num_steps),
                                       ("valid", config.batch_size, config.num_steps),
                                       ("test", 1, 1)):
    needed = batch_size * (num_steps + 1) if batch_size > 1 else 2
    if len(ids[split]) < needed:
      raise UserError(f"{name}: the {split} split has {len(ids[split])} tokens, too few for "
                      f"batch_size={batch_size} x num_steps={num_steps} (needs {needed}): use "
                      "more text or smaller --batch_size/--num_steps")
  return ids, vocab


def build(config, chief, options, strategy):
  """The model (its variables mirrored on every replica), its optimizer and the TrainState,
  restored if saved.

  Returns:
    (model, optimizer or None, train_state, checkpoint manager).
  """
  keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    model = PTBModel(config, resolve_precision(config.precision, config.jit_compile),
                     config.jit_compile)
    model.create_variables()
    optimizer = make_optimizer(config)
    if optimizer is not None:
      optimizer.build(model.trainable_variables)  # slots exist before restore, so they restore
  # Outside the scope: position, state and sums are the same on every worker, not mirrored.
  train_state = TrainState(model, config, config.seed)
  manager, restored = storage.checkpoint_manager(
      train_state.checkpoint(model, optimizer), chief.model_dir, options.keep_checkpoints,
      save_dir=chief.path, legacy=train_state.legacy_checkpoint(model, optimizer))
  if restored:
    log("resumed from %s: epoch %d, step %d", restored, int(train_state.epoch.numpy()) + 1,
        int(train_state.step.numpy()))
  return model, optimizer, train_state, manager


def train_and_evaluate(config, model_dir, options=RunOptions(), strategy=None):
  """Trains `config` for config.epochs epochs (resuming in MODEL_DIR), tests, exports.

  Under a multi-worker `strategy` every worker runs this; only the chief's files are kept.

  Returns:
    The metrics dict also written to MODEL_DIR/metrics.json.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.ChiefDir(strategy, model_dir)
  config = resolve(config, chief.model_dir, options)
  ids, vocab = load_data(options, config)
  config = dataclasses.replace(config, vocab_size=len(vocab))
  log("config: %s", config)
  check_config(chief.model_dir, config, write=chief.chief)
  model, optimizer, train_state, manager = build(config, chief, options, strategy)
  steps = make_steps(model, config, config.jit_compile, strategy, optimizer)
  train_state.restart_clock()
  task = LanguageModelTask(config, options, model, optimizer, train_state, manager, steps, ids,
                           vocab, strategy, chief.path)
  return loop.run(task, chief)


def resolve(config, model_dir, options=RunOptions(), hardware=None, quiet=False):
  """`config` as it runs on this hardware (common.devices.decide: the LSTM, XLA, the precision,
  the row groups), logged with why unless `quiet`; config.json records it. Auto keeps the
  implementation and XLA setting a resumed run recorded. Raises UserError for settings that
  cannot run here."""
  hardware = hardware or devices.visible()
  trained = (loop.saved_config(model_dir, configs.upgrade) if model_dir else None) or {}
  decisions = devices.decide(
      config, hardware,
      # bfloat16_matmuls asks for XLA as --jit_compile does: only XLA runs it.
      jit_compile_given=(f"--precision={BFLOAT16_MATMULS}" if config.precision ==
                         BFLOAT16_MATMULS else options.jit_compile_given),
      trained_lstm=trained.get("lstm"),
      bfloat16_precision=BFLOAT16_MATMULS if config.jit_compile else None,
      trained_jit_compile=trained.get("jit_compile"),
      recurrence_bound=recurrence_bound(config), cpu_row_groups=ROW_GROUPS)
  if not quiet:
    log("on %s: %s", f"{len(hardware.gpus)} GPU(s)" if hardware.gpus else "the CPU",
        decisions.describe())
  return dataclasses.replace(
      config, lstm=decisions.lstm, jit_compile=decisions.jit_compile,
      precision=resolve_precision(decisions.precision, decisions.jit_compile))


def check_config(model_dir, config, write=True):
  """Refuses to resume a MODEL_DIR trained with another config (common.loop.check_config),
  reading an older run's config.json in today's fields (configs.upgrade)."""
  loop.check_config(model_dir, config, configs.upgrade, write)


def _mean(values):
  values = [value for value in values if value is not None]
  return sum(values) / len(values) if values else None
