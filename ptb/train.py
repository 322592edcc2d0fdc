"""Trains, evaluates and exports the language model: `train_and_evaluate(config, model_dir,
options)`. The command line is `ptb.main` (python -m ptb.main --model=small).
"""
import dataclasses
import json
import math

import keras
import tensorflow as tf

from common import data_dir as data_dirs
from common import distribute, metrics, storage, training_state
from common.errors import UserError
from common.progress import Progress, Summaries, format_seconds, log
from ptb import configs, data, evaluation, export
from ptb.clipping import clip_by_global_norm
from ptb.fast_loss import token_nll
from ptb.model import BFLOAT16_MATMULS, PTBModel
from ptb.optimizer import apply_gradients, make_optimizer, set_learning_rate

TEST_WINDOW = 50  # batch-1 test windows: the state is carried, so any length gives one number
LOG_LINE = "epoch %3d  %5.3f  perplexity %9.3f  lr %.4f  %6.0f %s/s  ETA %s"


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How to run, as opposed to what to train (that is the config)."""
  data_dir: str = ""
  text_file: str = ""          # one text file, split 90/5/5 (ptb.data); wins over data_dir
  seed: int = 0
  use_synthetic_data: bool = False
  checkpoint_every_steps: int = 500
  jit_compile: bool = True     # XLA fuses the per-step gate arithmetic (PERFORMANCE.md)
  precision: str = "float32"


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

  def save(self, manager, step, state, nll_sum):
    """Checkpoints the position in the epoch, the carried state (all rows) and the sums."""
    self.tick()
    self.step.assign(step)
    self.lstm_state.assign(state)
    self.epoch_loss.assign(nll_sum)
    manager.save()

  def legacy_checkpoint(self, model, optimizer=None):
    """The layout of run directories from before the shared names: everything under `train`,
    the loss sum named `train_nll`."""
    old = {"model": model, "epoch": self.epoch, "step": self.step,
           "lstm_state": self.lstm_state, "train_nll": self.epoch_loss, "rng": self.rng,
           "wall_seconds": self.wall_seconds}
    if optimizer is not None:
      old["optimizer"] = optimizer
    return tf.train.Checkpoint(train=tf.train.Checkpoint(**old))


def run_epoch(train_state, train_step, windows, config, lr, summaries, manager, options,
              strategy=None):
  """Trains one epoch from the saved position; returns (mean train NLL, tokens/second)."""
  strategy = strategy or tf.distribute.get_strategy()
  inputs, targets = windows
  epoch, epoch_size = int(train_state.epoch.numpy()), len(inputs)
  start = int(train_state.step.numpy())
  tokens_per_step = config.batch_size * config.num_steps
  log_every = max(epoch_size // 10, 1)
  progress = Progress(epoch_size, done=start)
  # Each replica carries the state of its own rows, [layers, 2, rows, hidden].
  state = distribute.split_rows(strategy, tf.convert_to_tensor(train_state.lstm_state), axis=2)
  nll_sum = tf.constant(train_state.epoch_loss.numpy(), tf.float64)
  lr_tensor = tf.constant(lr, tf.float32)
  batches = distribute.distribute_batches(
      strategy,
      lambda: tf.data.Dataset.from_tensor_slices((inputs, targets)).skip(start).prefetch(2))
  for step, ((x, y), _) in enumerate(batches, start=start + 1):
    seed = train_state.rng.make_seeds(1)[:, 0]  # one seed for all replicas: global masks
    nll, state = train_step(x, y, state, lr_tensor, tf.cast(seed, tf.int32))
    nll_sum += tf.cast(nll, tf.float64)
    if step % log_every == 10 % log_every or step == epoch_size:
      loss = float(nll_sum) / (step * tokens_per_step)
      rate = (step - start) * tokens_per_step / progress.elapsed()
      log(LOG_LINE, epoch + 1, step / epoch_size, metrics.perplexity(loss, 1), lr, rate,
          _unit(config), format_seconds(progress.eta(step)))
      summaries.scalars("train", {"loss": loss, f"{_unit(config)}_per_second": rate},
                        epoch * epoch_size + step)
    if step % options.checkpoint_every_steps == 0 and step < epoch_size:
      train_state.save(manager, step, distribute.gather_rows(strategy, state, 2), nll_sum)
  rate = (epoch_size - start) * tokens_per_step / max(progress.elapsed(), 1e-9)
  train_state.save(manager, epoch_size, distribute.gather_rows(strategy, state, 2), nll_sum)
  return float(nll_sum) / (epoch_size * tokens_per_step), rate


def _unit(config):
  return "chars" if config.level == "char" else "words"


def load_data(options, config):
  """The three splits' ids and the vocabulary, each split checked to be long enough."""
  if options.use_synthetic_data:
    return data.synthetic(config.vocab_size, seed=options.seed)
  source = data_dirs.resolve(options.data_dir, "PTB_DATA_DIR", "ptb")
  ids, vocab = data.load(source, options.text_file, config.level, config.vocab_size)
  name = options.text_file or source
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
  keras.utils.set_random_seed(options.seed)
  with strategy.scope():
    model = PTBModel(config, options.precision, options.jit_compile)
    model.create_variables()
    optimizer = make_optimizer(config)
    if optimizer is not None:
      optimizer.build(model.trainable_variables)  # slots exist before restore, so they restore
  # Outside the scope: position, state and sums are the same on every worker, not mirrored.
  train_state = TrainState(model, config, options.seed)
  manager, restored = storage.checkpoint_manager(
      train_state.checkpoint(model, optimizer), chief.model_dir, save_dir=chief.path,
      legacy=train_state.legacy_checkpoint(model, optimizer))
  if restored:
    log("resumed from %s: epoch %d, step %d", restored, int(train_state.epoch.numpy()) + 1,
        int(train_state.step.numpy()))
  return model, optimizer, train_state, manager


def train_and_evaluate(config, model_dir, options=RunOptions(), strategy=None):
  """Trains `config` for max_max_epoch epochs (resuming in MODEL_DIR), tests, exports.

  Under a multi-worker `strategy` every worker runs this; only the chief's files are kept.

  Returns:
    The metrics dict also written to MODEL_DIR/metrics.json.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.ChiefDir(strategy, model_dir)
  ids, vocab = load_data(options, config)
  config = dataclasses.replace(config, vocab_size=len(vocab))
  check_config(chief.model_dir, config, write=chief.chief)
  model, optimizer, train_state, manager = build(config, chief, options, strategy)
  train_step, eval_step = make_steps(model, config, options.jit_compile, strategy, optimizer)
  windows = data.windows(ids["train"], config.batch_size, config.num_steps)
  summaries = Summaries(str(chief.path))
  train_state.restart_clock()
  # Epochs validated after the last checkpoint are trained again, so drop their rows.
  history = [row for row in _read_history(chief.model_dir)
             if row["epoch"] <= int(train_state.epoch.numpy())]
  while int(train_state.epoch.numpy()) < config.max_max_epoch:
    history.append(_train_epoch(train_state, train_step, eval_step, model, windows, ids, config,
                                summaries, manager, options, strategy, optimizer))
    storage.write_json(chief.path / "history.json", history)
  test_nll = evaluation.evaluate(eval_step, model, ids["test"], 1, TEST_WINDOW, strategy)
  log("Test Perplexity: %.3f%s", metrics.perplexity(test_nll, 1),
      evaluation.bits(config, test_nll))
  summaries.scalars("test", evaluation.split_metrics(config, test_nll), config.max_max_epoch)
  summaries.close()
  results = _finish(config, chief.path, model, vocab, options, history, test_nll, train_state)
  chief.clean()
  return results


def _train_epoch(train_state, train_step, eval_step, model, windows, ids, config, summaries,
                 manager, options, strategy, optimizer=None):
  """One epoch and its validation; returns its history row."""
  epoch = int(train_state.epoch.numpy())
  lr = configs.learning_rate(config, epoch)
  log("Epoch: %d Learning rate: %.3f", epoch + 1, lr)
  set_learning_rate(optimizer, lr)
  train_nll, rate = run_epoch(train_state, train_step, windows, config, lr, summaries, manager,
                              options, strategy)
  valid_nll = evaluation.evaluate(eval_step, model, ids["valid"], config.batch_size,
                                  config.num_steps, strategy)
  train = evaluation.split_metrics(config, train_nll)
  valid = evaluation.split_metrics(config, valid_nll)
  log("Epoch: %d Train Perplexity: %.3f%s", epoch + 1, train["perplexity"],
      evaluation.bits(config, train_nll))
  log("Epoch: %d Valid Perplexity: %.3f%s", epoch + 1, valid["perplexity"],
      evaluation.bits(config, valid_nll))
  summaries.scalars("train", {**train, "learning_rate": lr}, epoch + 1)
  summaries.scalars("valid", valid, epoch + 1)
  train_state.finish_epoch()
  manager.save()
  return {"epoch": epoch + 1, "learning_rate": lr, "train_loss": train_nll,
          "train_perplexity": train["perplexity"], "valid_loss": valid_nll,
          "valid_perplexity": valid["perplexity"], f"{_unit(config)}_per_second": rate,
          "wall_seconds": train_state.elapsed()}


def _finish(config, out, model, vocab, options, history, test_nll, train_state):
  """Writes the projector files, the SavedModel and, last, metrics.json."""
  export.write_projector(out, model, vocab)
  export.export(model, vocab, out / "export")
  last, unit = (history[-1] if history else {}), f"{_unit(config)}_per_second"
  results = {"test_loss": test_nll, "test_perplexity": metrics.perplexity(test_nll, 1),
             unit: _mean([row.get(unit) for row in history]),
             "epochs": config.max_max_epoch, "wall_seconds": train_state.elapsed(),
             "config": dataclasses.asdict(config), "precision": options.precision,
             "history": history}
  for split in ("train", "valid"):
    results.update({f"{split}_{name}": last.get(f"{split}_{name}")
                    for name in ("loss", "perplexity")})
  if config.level == "char":
    results.update({f"{split}_bits_per_char": results[f"{split}_loss"] / math.log(2)
                    for split in ("train", "valid", "test") if results[f"{split}_loss"]})
  storage.write_json(out / "metrics.json", results)
  return results


def _mean(values):
  values = [value for value in values if value is not None]
  return sum(values) / len(values) if values else None


def _read_history(model_dir):
  path = model_dir / "history.json"
  return json.loads(path.read_text()) if path.exists() else []


def check_config(model_dir, config, write=True):
  """Refuses to resume a MODEL_DIR trained with another config (it would mix two runs).

  Only max_max_epoch may change, so that a finished run can be trained for longer.
  """
  path = model_dir / "config.json"
  wanted = dataclasses.asdict(config)
  if path.exists() and (model_dir / "checkpoints").exists():
    saved = configs.upgrade(json.loads(path.read_text()))
    changed = sorted(k for k in wanted if k != "max_max_epoch" and saved[k] != wanted[k])
    if changed:
      raise UserError(f"{model_dir} holds a run with other settings ({', '.join(changed)} "
                      "differ): use a new --model_dir, or the same flags to resume it")
  if write:
    storage.write_json(path, wanted)
