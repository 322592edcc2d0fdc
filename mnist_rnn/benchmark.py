"""Times the MNIST RNN train and eval steps on synthetic data of the real shapes; prints JSON.

Usage: python -m mnist_rnn.benchmark [--model=test] [--precision=mixed_bfloat16]
                                     [--jit_compile] [--row_groups=N] [--intra_op_threads=N]
                                     [--nocell_op]
       python -m mnist_rnn.benchmark --compare   # our step variants vs a plain model.fit

The process runs with the threads per op that `mnist_rnn.main` would pick for the timed
configuration (`model.intra_op_threads`); with --compare every variant, the baseline
included, runs under that same setting, which the JSON reports.
"""
import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from common import benchmark, devices, errors
from common import flags as common_flags
from common import loop
from mnist_rnn import configs, data, train
from mnist_rnn.model import (build_model, forward_flops_per_example, intra_op_threads,
                             uses_cell_op)

FLAGS = flags.FLAGS


def synthetic_batch(config):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (config.batch_size, data.IMAGE_SIZE, data.IMAGE_SIZE), np.uint8)
  return (data.preprocess(images),
          tf.constant(rng.integers(0, data.NUM_CLASSES, config.batch_size), tf.int64))


def our_steps(config):
  """(train, eval) zero-argument callables: one step of this project's training loop."""
  keras.utils.set_random_seed(0)
  model = build_model(config)
  optimizer = train.make_optimizer(config)
  train_step = tf.function(train.make_train_step(model, optimizer),
                           jit_compile=config.jit_compile)
  eval_step = tf.function(train.make_eval_step(model), jit_compile=config.jit_compile)
  images, labels = synthetic_batch(config)
  return lambda: train_step(images, labels), lambda: eval_step(images, labels)


def fit_baseline(config, steps):
  """A plain `model.fit` of the tutorial's model (stock keras.layers.LSTM): a callable running
  one `fit` call of `steps` timed steps, returning their `benchmark.Elapsed` seconds.

  Only the steps are timed, from the end of an untimed first step to the end of the last: a
  `fit` call also builds its data iterator and callbacks, which here took 0 or about 270 ms a
  call at random (measured), while a real training run makes one call for many steps.
  """
  keras.utils.set_random_seed(0)
  model = build_model(dataclasses.replace(config, lstm="keras"))
  model.compile(keras.optimizers.Adam(config.learning_rate),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  images, labels = synthetic_batch(config)
  dataset = tf.data.Dataset.from_tensors((images, labels)).repeat().prefetch(2)
  clock = _StepClock()

  def block():
    model.fit(dataset, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[clock])
    return benchmark.Elapsed(clock.last - clock.first)

  return block


class _StepClock(keras.callbacks.Callback):
  """When the first and the last training step of a `fit` call ended."""

  def on_train_batch_end(self, batch, logs=None):
    now = time.perf_counter()
    if batch == 0:
      self.first = now
    self.last = now


def run(config, compare, steps, repeats, threads=0):
  """Returns the benchmark's result dict (see the module docstring); `threads`: the intra-op
  threads the caller set (0: TensorFlow's default), for the record."""
  peak = benchmark.peak_matmul_flops()
  forward = forward_flops_per_example(config) * config.batch_size
  train_step, eval_step = our_steps(config)
  times = benchmark.time_interleaved({"train": train_step, "eval": eval_step}, steps, repeats)
  result = {"app": "mnist_rnn", "config": dataclasses.asdict(config),
            "device": benchmark.device_name(), "precision": config.precision,
            "jit_compile": config.jit_compile, "intra_op_threads": threads,
            "cell_op": uses_cell_op(config), "lstm": config.lstm,
            "cudnn": devices.runs_cudnn(devices.visible(), config.lstm, config.cell,
                                        config.jit_compile),
            "unit": "examples",
            "train_flops_per_step": 3 * forward, "eval_flops_per_step": forward,
            "peak_float32_matmul_flops_per_second": round(peak),
            "train": benchmark.rate_summary(times["train"], config.batch_size, 3 * forward, peak),
            "eval": benchmark.rate_summary(times["eval"], config.batch_size, forward, peak)}
  if compare:
    variants = {"fit_baseline": fit_baseline(config, steps)}
    for name, overrides in [
        ("keras_lstm_loop", {"lstm": "keras"}), ("reference", {"lstm": "reference"}),
        ("float32", {}),
        ("float32_xla", {"jit_compile": True}), ("bfloat16", {"precision": "mixed_bfloat16"}),
        ("bfloat16_tensorflow_ops", {"precision": "mixed_bfloat16", "cell_op": False}),
        ("bfloat16_one_row_group", {"precision": "mixed_bfloat16", "row_groups": 1}),
        ("bfloat16_xla", {"precision": "mixed_bfloat16", "jit_compile": True})]:
      plain = {"lstm": "fast", "precision": "float32", "jit_compile": False}
      variants[name] = _repeat(our_steps(dataclasses.replace(
          config, **{**plain, **overrides}))[0], steps)
    # One call of each variant runs `steps` steps, so time blocks of one call.
    times = benchmark.time_interleaved(variants, 1, repeats, warmup=1)
    per_step = {name: [t / steps for t in ts] for name, ts in times.items()}
    summaries = {name: benchmark.rate_summary(t, config.batch_size, 3 * forward, peak)
                 for name, t in per_step.items()}
    base = summaries["fit_baseline"]["per_second_median"]
    result["compare"] = {name: dict(s, speedup=round(s["per_second_median"] / base, 3))
                         for name, s in summaries.items()}
  return result


def _repeat(step, steps):
  def block():
    for _ in range(steps):
      out = step()
    return out
  return block


def main(argv):
  del argv
  tf.get_logger().setLevel("ERROR")  # each variant is its own tf.function: retracing is expected
  # Decided as mnist_rnn.main decides (common/devices.py): the defaults time what a user gets.
  config = train.resolve(
      configs.get_config(FLAGS.model, precision=FLAGS.precision, jit_compile=FLAGS.jit_compile,
                         lstm=FLAGS.lstm, row_groups=FLAGS.row_groups, cell_op=FLAGS.cell_op),
      model_dir=None, quiet=True,
      options=loop.RunOptions(jit_compile_given=bool(FLAGS["jit_compile"].present)))
  threads = FLAGS.intra_op_threads or intra_op_threads(config)
  common_flags.set_intra_op_threads(threads)  # before any TensorFlow op
  benchmark.print_json(run(config, FLAGS.compare, FLAGS.steps, FLAGS.repeats, threads))


if __name__ == "__main__":
  flags.DEFINE_enum("model", "tutorial", list(configs.CONFIGS), "Configuration to time.")
  flags.DEFINE_alias("config", "model")
  flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16"], "Compute dtype "
                    "(auto: as mnist_rnn.main picks it).")
  flags.DEFINE_bool("jit_compile", False, "XLA-compile the steps.")
  flags.DEFINE_enum("lstm", "auto", list(configs.CHOICES["lstm"]), "How the LSTM runs "
                    "(common/lstm.py): reference, fast, or keras; auto: as mnist_rnn.main "
                    "picks it (common/devices.py).")
  flags.DEFINE_integer("row_groups", 0, "Fused LSTM: independent chains of rows (0: 2 on a "
                       "CPU without XLA, else 1).", lower_bound=0)
  flags.DEFINE_bool("cell_op", True, "Fused LSTM on a CPU without XLA: the gate arithmetic "
                    "as one op per step, compiled for this CPU (common/cell_op.py).")
  common_flags.define_intra_op_threads_flag()
  flags.DEFINE_bool("compare", False, "Also time the variants against a plain model.fit.")
  flags.DEFINE_integer("steps", 20, "Steps per timed block.", lower_bound=1)
  flags.DEFINE_integer("repeats", 5, "Timed blocks per variant.", lower_bound=1)
  errors.run(main)
