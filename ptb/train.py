"""Trains, evaluates and exports the PTB language model (the library behind `ptb.main`).

Usage: python -m ptb.train --model=small --data_dir=DIR --model_dir=DIR
"""
import dataclasses
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from common import data_dir as data_dirs
from common import errors, metrics, precision, storage
from common.errors import UserError
from common.flags import define_common_flags, positive
from common.progress import Progress, Summaries, format_seconds
from ptb import configs, data, export
from ptb.model import PTBModel, token_nll

TEST_WINDOW = 50  # batch-1 test windows: the state is carried, so any length gives one number


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How to run, as opposed to what to train (that is the config)."""
  data_dir: str = ""
  seed: int = 0
  use_synthetic_data: bool = False
  checkpoint_every_steps: int = 500
  # XLA fuses the per-step gate arithmetic: 1.15x our float32 step on CPU, and the same
  # perplexity over a full small run (measured, README).
  jit_compile: bool = True
  precision: str = "float32"


def apply_sgd(variables, grads, lr):
  """Plain SGD; the embedding's gradient stays sparse (only the rows of this window)."""
  for variable, grad in zip(variables, grads):
    if isinstance(grad, tf.IndexedSlices):
      variable.value.scatter_sub(tf.IndexedSlices(lr * grad.values, grad.indices))
    else:
      variable.assign_sub(lr * grad)


def make_steps(model, config, jit_compile=False):
  """The train and eval step functions, compiled as tf.function graphs.

  train_step(inputs, targets, state, lr, seed) -> (summed NLL, final state)
  eval_step(inputs, targets, state) -> (summed NLL, final state)
  """
  batch_size = tf.cast(config.batch_size, tf.float32)

  def train_step(inputs, targets, state, lr, seed):
    # `state` comes in as a plain tensor, so the gradient stops at the window's edge.
    with tf.GradientTape() as tape:
      logits, state = model(inputs, state, dropout_seed=seed)
      nll = token_nll(logits, targets)
      # Summed over time steps, averaged over the batch (the tutorial's sequence_loss with
      # average_across_timesteps=False): what makes learning rate 1.0 right.
      loss = nll / batch_size
    grads = tape.gradient(loss, model.trainable_variables)
    grads, _ = tf.clip_by_global_norm(grads, config.max_grad_norm)
    apply_sgd(model.trainable_variables, grads, lr)
    return nll, state

  def eval_step(inputs, targets, state):
    logits, state = model(inputs, state)
    return token_nll(logits, targets), state

  return (tf.function(train_step, jit_compile=jit_compile),
          tf.function(eval_step, jit_compile=jit_compile))


def evaluate(eval_step, model, ids, batch_size, num_steps):
  """Perplexity of a whole id stream, state carried from window to window.

  With batch_size 1 every target after the first token is scored, the last window being
  shorter; with a larger batch it is the tutorial's valid evaluation (ptb_producer windows).
  """
  if batch_size == 1:
    stream = np.asarray(ids, np.int32)[None, :]
    bounds = list(range(0, len(ids) - 1, num_steps)) + [len(ids) - 1]
    batches = [(stream[:, a:b], stream[:, a + 1:b + 1]) for a, b in zip(bounds, bounds[1:])]
  else:
    inputs, targets = data.windows(ids, batch_size, num_steps)
    batches = zip(inputs, targets)
  state = model.zero_state(batch_size)
  total_nll, total_tokens = 0.0, 0
  for inputs, targets in batches:
    nll, state = eval_step(inputs, targets, state)
    total_nll += float(nll)
    total_tokens += targets.size
  return metrics.perplexity(total_nll, total_tokens)


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


def run_epoch(train_state, train_step, inputs, targets, config, lr, summaries, manager, options):
  """Trains one epoch from the saved position; returns (train perplexity, words/second)."""
  epoch = int(train_state.epoch.numpy())
  epoch_size = len(inputs)
  start = int(train_state.step.numpy())
  words_per_step = config.batch_size * config.num_steps
  log_every = max(epoch_size // 10, 1)
  progress = Progress(epoch_size, done=start)
  state = tf.convert_to_tensor(train_state.lstm_state)
  nll_sum = tf.constant(train_state.train_nll.numpy(), tf.float64)
  lr_tensor = tf.constant(lr, tf.float32)
  dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).skip(start).prefetch(2)
  for step, (x, y) in enumerate(dataset, start=start + 1):
    seed = train_state.rng.make_seeds(1)[:, 0]
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
      _save(train_state, manager, step, state, nll_sum)
  wps = (epoch_size - start) * words_per_step / max(progress.elapsed(), 1e-9)
  _save(train_state, manager, epoch_size, state, nll_sum)
  return metrics.perplexity(float(nll_sum), epoch_size * words_per_step), wps


def _save(train_state, manager, step, state, nll_sum):
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


def train_and_evaluate(config, model_dir, options=RunOptions()):
  """Trains `config` for max_max_epoch epochs (resuming in MODEL_DIR), tests, exports.

  Returns:
    The metrics dict also written to MODEL_DIR/metrics.json.
  """
  model_dir = pathlib.Path(model_dir)
  ids, vocab = load_data(options, config)
  config = dataclasses.replace(config, vocab_size=len(vocab))
  _check_config(model_dir, config)
  keras.utils.set_random_seed(options.seed)
  model = PTBModel(config, options.precision)
  model(tf.zeros([1, 1], tf.int32), model.zero_state(1))  # create the variables
  train_state = TrainState(model, config, options.seed)
  manager, restored = storage.checkpoint_manager(tf.train.Checkpoint(train=train_state),
                                                 model_dir)
  if restored:
    logging.info("resumed from %s: epoch %d, step %d", restored,
                 int(train_state.epoch.numpy()) + 1, int(train_state.step.numpy()))
  train_step, eval_step = make_steps(model, config, options.jit_compile)
  inputs, targets = data.windows(ids["train"], config.batch_size, config.num_steps)
  summaries = Summaries(str(model_dir))
  train_state.started = time.perf_counter()
  # Epochs validated after the last checkpoint are trained again, so drop their rows.
  history = [row for row in _read_history(model_dir)
             if row["epoch"] <= int(train_state.epoch.numpy())]
  while int(train_state.epoch.numpy()) < config.max_max_epoch:
    epoch = int(train_state.epoch.numpy())
    lr = configs.learning_rate(config, epoch)
    logging.info("Epoch: %d Learning rate: %.3f", epoch + 1, lr)
    train_ppl, wps = run_epoch(train_state, train_step, inputs, targets, config, lr,
                               summaries, manager, options)
    valid_ppl = evaluate(eval_step, model, ids["valid"], config.batch_size, config.num_steps)
    logging.info("Epoch: %d Train Perplexity: %.3f", epoch + 1, train_ppl)
    logging.info("Epoch: %d Valid Perplexity: %.3f", epoch + 1, valid_ppl)
    summaries.scalars("train", {"perplexity": train_ppl, "learning_rate": lr}, epoch + 1)
    summaries.scalars("valid", {"perplexity": valid_ppl}, epoch + 1)
    history.append({"epoch": epoch + 1, "learning_rate": lr, "train_perplexity": train_ppl,
                    "valid_perplexity": valid_ppl, "words_per_second": wps})
    storage.write_json(model_dir / "history.json", history)
    train_state.epoch.assign_add(1)
    train_state.start_epoch()
    _save(train_state, manager, 0, train_state.lstm_state, 0.0)
  test_ppl = evaluate(eval_step, model, ids["test"], 1, TEST_WINDOW)
  logging.info("Test Perplexity: %.3f", test_ppl)
  summaries.scalars("test", {"perplexity": test_ppl}, config.max_max_epoch)
  summaries.close()
  export.write_projector(model_dir, model, vocab)
  export.export(model, vocab, model_dir / "export")
  last = history[-1] if history else {}
  results = {"train_perplexity": last.get("train_perplexity"),
             "valid_perplexity": last.get("valid_perplexity"), "test_perplexity": test_ppl,
             "words_per_second": _mean([h["words_per_second"] for h in history]),
             "epochs": config.max_max_epoch, "wall_seconds": train_state.elapsed(),
             "config": dataclasses.asdict(config), "precision": options.precision,
             "history": history}
  storage.write_json(model_dir / "metrics.json", results)
  return results


def _mean(values):
  return sum(values) / len(values) if values else None


def _read_history(model_dir):
  path = model_dir / "history.json"
  return json.loads(path.read_text()) if path.exists() else []


def _check_config(model_dir, config):
  """Refuses to resume a MODEL_DIR trained with another config (it would mix two runs).

  Only max_max_epoch may change, so that a finished run can be trained for longer.
  """
  path = model_dir / "config.json"
  wanted = dataclasses.asdict(config)
  if path.exists() and (model_dir / "checkpoints").exists():
    saved = json.loads(path.read_text())
    changed = sorted(k for k in wanted if k != "max_max_epoch" and saved.get(k) != wanted[k])
    if changed:
      raise UserError(f"{model_dir} holds a run with other settings ({', '.join(changed)} "
                      "differ): use a new --model_dir, or the same flags to resume it")
  storage.write_json(path, wanted)


def define_flags():
  """The command line: --model picks a config, a flag per config field overrides it."""
  define_common_flags("PTB_DATA_DIR", default_jit_compile=True)
  flags.DEFINE_alias("data_path", "data_dir")   # the tutorial's names
  flags.DEFINE_alias("save_path", "model_dir")
  flags.DEFINE_enum("model", "small", list(configs.CONFIGS), "Configuration (paper's rows).")
  flags.DEFINE_integer("checkpoint_every_steps", 500, "Also checkpoint every N training steps.")
  for field in dataclasses.fields(configs.SmallConfig):
    define = flags.DEFINE_integer if field.type is int else flags.DEFINE_float
    define(field.name, None, f"Override the config's {field.name}.")
    if field.name not in ("lr_decay",):
      positive(field.name)
  flags.register_validator("keep_prob", lambda v: v is None or 0 < v <= 1,
                           "--keep_prob must be in (0, 1]")
  flags.register_validator("lr_decay", lambda v: v is None or 0 < v <= 1,
                           "--lr_decay must be in (0, 1]")
  positive("checkpoint_every_steps")


def main(argv):
  del argv
  flag = flags.FLAGS
  if flag.precision == "mixed_float16":
    raise UserError("--precision=mixed_float16 needs loss scaling, which ptb's plain SGD does "
                    "not do: use float32 or mixed_bfloat16")
  config = configs.get_config(flag.model, **{name: flag[name].value for name in configs.FIELDS})
  options = RunOptions(data_dir=flag.data_dir, seed=flag.seed,
                       use_synthetic_data=flag.use_synthetic_data,
                       checkpoint_every_steps=flag.checkpoint_every_steps,
                       jit_compile=flag.jit_compile,
                       precision=precision.resolve(flag.precision))
  logging.info("config %s: %s; precision %s", flag.model, config, options.precision)
  results = train_and_evaluate(config, flag.model_dir, options)
  logging.info("wrote %s/metrics.json: test perplexity %.3f in %.0f s", flag.model_dir,
               results["test_perplexity"], results["wall_seconds"])


if __name__ == "__main__":
  define_flags()
  errors.run(main)
