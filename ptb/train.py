"""Trains, evaluates and exports the PTB language model: `train_and_evaluate(config, model_dir,
options)`. The command line is `ptb.main` (python -m ptb.main --model=small).
"""
import dataclasses
import json
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from common import data_dir as data_dirs
from common import distribute, metrics, precision, storage
from common.errors import UserError
from common.progress import Progress, Summaries, format_seconds
from ptb import configs, data, export
from ptb.model import BFLOAT16_MATMULS, PTBModel, token_nll

TEST_WINDOW = 50  # batch-1 test windows: the state is carried, so any length gives one number


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How to run, as opposed to what to train (that is the config)."""
  data_dir: str = ""
  seed: int = 0
  use_synthetic_data: bool = False
  checkpoint_every_steps: int = 500
  # XLA fuses the per-step gate arithmetic: 1.13x our float32 step on CPU, and the same
  # perplexity over a full small run (measured, README).
  jit_compile: bool = True
  precision: str = "float32"


def apply_sgd(variables, grads, lr):
  """Plain SGD; the embedding's gradient stays sparse (only the rows of this window).

  Called in a replica with gradients already summed over replicas: every replica's copy
  of a variable takes the same update (tf.distribute's merge_call and extended.update).
  """

  def update(variable, grad):
    if isinstance(grad, tf.IndexedSlices):
      return variable.scatter_sub(tf.IndexedSlices(lr * grad.values, grad.indices))
    return variable.assign_sub(lr * grad)

  def update_all(strategy, grads):
    for variable, grad in zip(variables, grads):
      strategy.extended.update(variable.value, update, args=(grad,), group=False)

  tf.distribute.get_replica_context().merge_call(update_all, args=(grads,))


def clip_by_global_norm(grads, clip_norm):
  """`tf.clip_by_global_norm`'s numbers (NaN everywhere for an infinite or NaN norm), with each
  matrix's sum of squares taken by a matmul with a ones vector.

  Under XLA on our CPU that is 2.3x faster than a reduction (0.54 against 1.26 ms for the
  softmax's [200, 10000] gradient), and it sat on the step's critical path: the ptb small
  step 30.05 against 31.38 ms in bfloat16_matmuls, 42.38 against 43.55 in float32 (measured).
  """
  def squared_norm(grad):
    values = grad.values if isinstance(grad, tf.IndexedSlices) else grad  # [rows, columns]
    if values.shape.rank != 2:
      return tf.reduce_sum(tf.square(values))
    ones = tf.ones_like(values[:1])  # [1, columns]; the columns unknown until run time under
    # tf.distribute, whose all-reduced gradients lose their static shape
    return tf.reduce_sum(tf.linalg.matmul(tf.square(values), ones, transpose_b=True))

  norm = tf.sqrt(tf.add_n([squared_norm(grad) for grad in grads]))
  # clip_norm / max(norm, clip_norm), and NaN unless the norm is finite (as TensorFlow's).
  scale = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
  return [tf.IndexedSlices(grad.values * scale, grad.indices, grad.dense_shape)
          if isinstance(grad, tf.IndexedSlices) else grad * scale for grad in grads], norm


def make_steps(model, config, jit_compile=False, strategy=None):
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
      nll, state = model.nll(inputs, targets, state, dropout_seed=seed, rows=rows,
                             under_xla=jit_compile)
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
    apply_sgd(variables, grads, lr)
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


def evaluate(eval_step, model, ids, batch_size, num_steps, strategy=None):
  """Perplexity of a whole id stream, state carried from window to window.

  With batch_size 1 every target after the first token is scored, the last window being
  shorter; with a larger batch it is the tutorial's valid evaluation (ptb_producer windows).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if batch_size == 1:
    stream = np.asarray(ids, np.int32)[None, :]
    bounds = list(range(0, len(ids) - 1, num_steps)) + [len(ids) - 1]
    windows = tf.data.Dataset.from_generator(
        lambda: ((stream[:, a:b], stream[:, a + 1:b + 1]) for a, b in zip(bounds, bounds[1:])),
        output_signature=(tf.TensorSpec([1, None], tf.int32),) * 2)
    tokens = len(ids) - 1
  else:
    inputs, targets = data.windows(ids, batch_size, num_steps)
    windows = tf.data.Dataset.from_tensor_slices((inputs, targets))
    tokens = targets.size
  state = distribute.split_rows(strategy, model.zero_state(batch_size), axis=2)
  total_nll = 0.0
  for (x, y), _ in distribute.distribute_batches(strategy, lambda: windows.prefetch(2)):
    nll, state = eval_step(x, y, state)
    total_nll += float(nll)
  return metrics.perplexity(total_nll, tokens)


class TrainState(tf.Module):
  """Everything a resumed run needs beside the weights: position, carried state, RNG."""

  def __init__(self, model, config, seed):
    super().__init__()
    self.model = model
    self.epoch = tf.Variable(0, dtype=tf.int64)     # epochs finished
    self.step = tf.Variable(0, dtype=tf.int64)      # windows done in the current epoch
    self.lstm_state = tf.Variable(model.zero_state(config.batch_size))
    self.train_nll = tf.Variable(0.0, dtype=tf.float64)  # this epoch's sums so far
    self.rng = tf.random.Generator.from_seed(seed)
    self.wall_seconds = tf.Variable(0.0, dtype=tf.float64)  # training time before this run
    self.started = time.perf_counter()

  def elapsed(self):
    """Wall seconds of training over all runs, as of now."""
    return float(self.wall_seconds.numpy()) + time.perf_counter() - self.started

  def start_epoch(self):
    self.step.assign(0)
    self.lstm_state.assign(tf.zeros_like(self.lstm_state))
    self.train_nll.assign(0.0)


def run_epoch(train_state, train_step, inputs, targets, config, lr, summaries, manager, options,
              strategy=None):
  """Trains one epoch from the saved position; returns (train perplexity, words/second)."""
  strategy = strategy or tf.distribute.get_strategy()
  epoch = int(train_state.epoch.numpy())
  epoch_size = len(inputs)
  start = int(train_state.step.numpy())
  words_per_step = config.batch_size * config.num_steps
  log_every = max(epoch_size // 10, 1)
  progress = Progress(epoch_size, done=start)
  # Each replica carries the state of its own rows, [layers, 2, rows, hidden].
  state = distribute.split_rows(strategy, tf.convert_to_tensor(train_state.lstm_state), axis=2)
  nll_sum = tf.constant(train_state.train_nll.numpy(), tf.float64)
  lr_tensor = tf.constant(lr, tf.float32)
  batches = distribute.distribute_batches(
      strategy,
      lambda: tf.data.Dataset.from_tensor_slices((inputs, targets)).skip(start).prefetch(2))
  for step, ((x, y), _) in enumerate(batches, start=start + 1):
    seed = train_state.rng.make_seeds(1)[:, 0]  # one seed for all replicas: global masks
    nll, state = train_step(x, y, state, lr_tensor, tf.cast(seed, tf.int32))
    nll_sum += tf.cast(nll, tf.float64)
    if step % log_every == 10 % log_every or step == epoch_size:
      ppl = metrics.perplexity(float(nll_sum), step * words_per_step)
      wps = (step - start) * words_per_step / progress.elapsed()
      logging.info("epoch %3d  %5.3f  perplexity %9.3f  lr %.4f  %6.0f wps  ETA %s",
                   epoch + 1, step / epoch_size, ppl, lr, wps,
                   format_seconds(progress.eta(step)))
      global_step = epoch * epoch_size + step
      summaries.scalars("train", {"loss": float(nll_sum) / (step * words_per_step),
                                  "words_per_second": wps}, global_step)
    if step % options.checkpoint_every_steps == 0 and step < epoch_size:
      _save(train_state, manager, step, distribute.gather_rows(strategy, state, 2), nll_sum)
  wps = (epoch_size - start) * words_per_step / max(progress.elapsed(), 1e-9)
  _save(train_state, manager, epoch_size, distribute.gather_rows(strategy, state, 2), nll_sum)
  return metrics.perplexity(float(nll_sum), epoch_size * words_per_step), wps


def _save(train_state, manager, step, state, nll_sum):
  """Checkpoints the position in the epoch, the carried state (all rows) and the sums."""
  train_state.wall_seconds.assign(train_state.elapsed())
  train_state.started = time.perf_counter()
  train_state.step.assign(step)
  train_state.lstm_state.assign(state)
  train_state.train_nll.assign(nll_sum)
  manager.save()


def load_data(options, config):
  if options.use_synthetic_data:
    return data.synthetic(config.vocab_size, seed=options.seed)
  ids, vocab = data.load(data_dirs.resolve(options.data_dir, "PTB_DATA_DIR", "ptb"))
  if len(vocab) != config.vocab_size:
    logging.warning("the training file has %d word types; using vocab_size=%d", len(vocab),
                    len(vocab))
  return ids, vocab


def build(config, chief, options, strategy):
  """The model (its variables mirrored on every replica) and the TrainState, restored if saved.

  Returns:
    (model, train_state, checkpoint manager).
  """
  keras.utils.set_random_seed(options.seed)
  with strategy.scope():
    model = PTBModel(config, options.precision)
    model.create_variables()
  # Outside the scope: position, state and sums are the same on every worker, not mirrored.
  train_state = TrainState(model, config, options.seed)
  manager, restored = storage.checkpoint_manager(
      tf.train.Checkpoint(train=train_state), chief.model_dir, save_dir=chief.path)
  if restored:
    logging.info("resumed from %s: epoch %d, step %d", restored,
                 int(train_state.epoch.numpy()) + 1, int(train_state.step.numpy()))
  return model, train_state, manager


def train_and_evaluate(config, model_dir, options=RunOptions(), strategy=None):
  """Trains `config` for max_max_epoch epochs (resuming in MODEL_DIR), tests, exports.

  Under a multi-worker `strategy` every worker runs this; only the chief's files are kept.

  Returns:
    The metrics dict also written to MODEL_DIR/metrics.json.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.ChiefDir(strategy, model_dir)
  out = chief.path  # MODEL_DIR on the chief, scratch on the other workers
  ids, vocab = load_data(options, config)
  config = dataclasses.replace(config, vocab_size=len(vocab))
  _check_config(chief.model_dir, config, write=chief.chief)
  model, train_state, manager = build(config, chief, options, strategy)
  train_step, eval_step = make_steps(model, config, options.jit_compile, strategy)
  inputs, targets = data.windows(ids["train"], config.batch_size, config.num_steps)
  summaries = Summaries(str(out))
  train_state.started = time.perf_counter()
  # Epochs validated after the last checkpoint are trained again, so drop their rows.
  history = [row for row in _read_history(chief.model_dir)
             if row["epoch"] <= int(train_state.epoch.numpy())]
  while int(train_state.epoch.numpy()) < config.max_max_epoch:
    epoch = int(train_state.epoch.numpy())
    lr = configs.learning_rate(config, epoch)
    logging.info("Epoch: %d Learning rate: %.3f", epoch + 1, lr)
    train_ppl, wps = run_epoch(train_state, train_step, inputs, targets, config, lr,
                               summaries, manager, options, strategy)
    valid_ppl = evaluate(eval_step, model, ids["valid"], config.batch_size, config.num_steps,
                         strategy)
    logging.info("Epoch: %d Train Perplexity: %.3f", epoch + 1, train_ppl)
    logging.info("Epoch: %d Valid Perplexity: %.3f", epoch + 1, valid_ppl)
    summaries.scalars("train", {"perplexity": train_ppl, "learning_rate": lr}, epoch + 1)
    summaries.scalars("valid", {"perplexity": valid_ppl}, epoch + 1)
    history.append({"epoch": epoch + 1, "learning_rate": lr, "train_perplexity": train_ppl,
                    "valid_perplexity": valid_ppl, "words_per_second": wps})
    storage.write_json(out / "history.json", history)
    train_state.epoch.assign_add(1)
    train_state.start_epoch()
    _save(train_state, manager, 0, train_state.lstm_state, 0.0)
  test_ppl = evaluate(eval_step, model, ids["test"], 1, TEST_WINDOW, strategy)
  logging.info("Test Perplexity: %.3f", test_ppl)
  summaries.scalars("test", {"perplexity": test_ppl}, config.max_max_epoch)
  summaries.close()
  results = _finish(config, out, model, vocab, options, history, test_ppl, train_state)
  chief.clean()
  return results


def _finish(config, out, model, vocab, options, history, test_ppl, train_state):
  """Writes the projector files, the SavedModel and, last, metrics.json."""
  export.write_projector(out, model, vocab)
  export.export(model, vocab, out / "export")
  last = history[-1] if history else {}
  results = {"train_perplexity": last.get("train_perplexity"),
             "valid_perplexity": last.get("valid_perplexity"), "test_perplexity": test_ppl,
             "words_per_second": _mean([h["words_per_second"] for h in history]),
             "epochs": config.max_max_epoch, "wall_seconds": train_state.elapsed(),
             "config": dataclasses.asdict(config), "precision": options.precision,
             "history": history}
  storage.write_json(out / "metrics.json", results)
  return results


def _mean(values):
  return sum(values) / len(values) if values else None


def _read_history(model_dir):
  path = model_dir / "history.json"
  return json.loads(path.read_text()) if path.exists() else []


def _check_config(model_dir, config, write=True):
  """Refuses to resume a MODEL_DIR trained with another config (it would mix two runs).

  Only max_max_epoch may change, so that a finished run can be trained for longer.
  """
  path = model_dir / "config.json"
  wanted = dataclasses.asdict(config)
  if path.exists() and (model_dir / "checkpoints").exists():
    saved = json.loads(path.read_text())
    # A field the saved run predates had its default then (fused_lstm).
    defaults = dataclasses.asdict(configs.SmallConfig())
    changed = sorted(k for k in wanted if k != "max_max_epoch"
                     and saved.get(k, defaults[k]) != wanted[k])
    if changed:
      raise UserError(f"{model_dir} holds a run with other settings ({', '.join(changed)} "
                      "differ): use a new --model_dir, or the same flags to resume it")
  if write:
    storage.write_json(path, wanted)


def resolve_precision(name, jit_compile):
  """The --precision to train with: 'auto' is bfloat16_matmuls where that is fast, else float32.

  bfloat16_matmuls is the fastest numerically safe mode (README: the perplexity of float32);
  the whole model in bfloat16 (mixed_bfloat16) is faster still but loses perplexity.
  """
  if name == "mixed_float16":
    raise UserError("--precision=mixed_float16 needs loss scaling, which ptb's plain SGD does "
                    "not do: use float32, bfloat16_matmuls or mixed_bfloat16")
  if name == BFLOAT16_MATMULS and not jit_compile:
    raise UserError(f"--precision={BFLOAT16_MATMULS} needs --jit_compile: only XLA multiplies "
                    "bfloat16 inputs into float32 results; use --precision=float32 without it")
  if name == "auto":
    return BFLOAT16_MATMULS if jit_compile and precision.has_fast_bfloat16() else "float32"
  return name


if __name__ == "__main__":  # the command was `python -m ptb.train` until 2026-11-26
  raise SystemExit("error: ptb.train is the library; train with python -m ptb.main (same flags)")
