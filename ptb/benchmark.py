"""Times the PTB train and eval steps on synthetic data of the real shapes; prints JSON.

Usage: python -m ptb.benchmark --model=small   # the step ptb.main runs by default
       python -m ptb.benchmark --model=small --precision=float32 --nojit_compile
       python -m ptb.benchmark --model=small --compare   # every fast path vs a Keras baseline
       python -m ptb.benchmark --model=char               # characters per second
       python -m ptb.benchmark --model=char --hidden_size=256 --batch_size=32 --keep_prob=1

The process runs with the threads per op that ptb.main would pick for the timed configuration
(one where the LSTM runs in chains of rows: `ptb.model.intra_op_threads`); with --compare every
variant runs under that setting too.
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from common import benchmark, devices, errors
from common import flags as common_flags
from ptb import configs, train
from ptb.optimizer import make_optimizer
from ptb.model import (BFLOAT16_MATMULS, PTBModel, forward_flops_per_token, intra_op_threads,
                       plan as model_plan)

FLAGS = flags.FLAGS


def synthetic_window(config, seed=0):
  rng = np.random.default_rng(seed)
  shape = (config.batch_size, config.num_steps)
  return (tf.constant(rng.integers(0, config.vocab_size, shape, dtype=np.int32)),
          tf.constant(rng.integers(0, config.vocab_size, shape, dtype=np.int32)))


def our_steps(config, precision, jit_compile):
  """(train, eval) zero-argument callables running one step of this project's model."""
  keras.utils.set_random_seed(0)
  model = PTBModel(config, precision, jit_compile)
  model.create_variables()
  optimizer = make_optimizer(config)  # None: plain SGD
  if optimizer is not None:
    optimizer.build(model.trainable_variables)
  train_step, eval_step = train.make_steps(model, config, jit_compile, optimizer=optimizer)
  inputs, targets = synthetic_window(config)
  state = model.zero_state(config.batch_size)
  lr, seed = tf.constant(1.0), tf.constant([0, 0])
  return (lambda: train_step(inputs, targets, state, lr, seed),
          lambda: eval_step(inputs, targets, state))


def keras_baseline_step(config):
  """The straightforward version: stock Keras layers and optimizer in a tf.function."""
  keras.utils.set_random_seed(0)
  def init():  # one per weight (ptb.model)
    return keras.initializers.RandomUniform(-config.init_scale, config.init_scale)
  embedding = keras.layers.Embedding(config.vocab_size, config.hidden_size,
                                     embeddings_initializer=init())
  lstms = [keras.layers.LSTM(config.hidden_size, return_sequences=True, return_state=True,
                             unit_forget_bias=False, kernel_initializer=init(),
                             recurrent_initializer=init()) for _ in range(config.num_layers)]
  softmax = keras.layers.Dense(config.vocab_size, kernel_initializer=init())
  optimizer = keras.optimizers.SGD(1.0, global_clipnorm=config.max_grad_norm)
  inputs, targets = synthetic_window(config)
  zeros = tf.zeros([config.batch_size, config.hidden_size])

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      x = embedding(inputs)
      for lstm in lstms:
        x, _, _ = lstm(x, initial_state=[zeros, zeros])
      logits = softmax(x)
      loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
      loss /= config.batch_size
    variables = embedding.trainable_variables + softmax.trainable_variables + [
        v for lstm in lstms for v in lstm.trainable_variables]
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return step


def run(config, precision, jit_compile, compare, steps, repeats):
  """Returns the benchmark's result dict (see the module docstring)."""
  peak = benchmark.peak_matmul_flops()
  words = config.batch_size * config.num_steps
  forward = forward_flops_per_token(config) * words
  train_step, eval_step = our_steps(config, precision, jit_compile)
  times = benchmark.time_interleaved({"train": train_step, "eval": eval_step}, steps, repeats)
  result = {"app": "ptb", "config": dataclasses.asdict(config), "device": benchmark.device_name(),
            "precision": precision, "jit_compile": jit_compile, "lstm": config.lstm,
            "cudnn": devices.runs_cudnn(devices.visible(), config.lstm, config.cell, jit_compile),
            "row_groups": model_plan(config, precision, jit_compile).row_groups,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "train_flops_per_step": 3 * forward, "eval_flops_per_step": forward,
            "peak_float32_matmul_flops_per_second": round(peak),
            "train": benchmark.rate_summary(times["train"], words, 3 * forward, peak),
            "eval": benchmark.rate_summary(times["eval"], words, forward, peak),
            "unit": "chars" if config.level == "char" else "words"}
  if compare:
    variants = {"keras_baseline": keras_baseline_step(config)}
    for name, variant_precision, variant_jit, lstm in [
        ("float32", "float32", False, "fast"), ("float32_xla", "float32", True, "fast"),
        ("bfloat16_matmuls_xla", BFLOAT16_MATMULS, True, "fast"),
        ("bfloat16", "mixed_bfloat16", False, "fast"),
        ("bfloat16_xla", "mixed_bfloat16", True, "fast"),
        ("reference_xla", "float32", True, "reference"),  # TensorFlow's autodiff
        # keras.layers.LSTM in our loop: the cuDNN kernel on a GPU (XLA would bypass it)
        ("keras_lstm", "float32", False, "keras")]:
      variant_config = dataclasses.replace(config, lstm=lstm)
      variants[name] = our_steps(variant_config, variant_precision, variant_jit)[0]
    times = benchmark.time_interleaved(variants, steps, repeats)
    summaries = {name: benchmark.rate_summary(t, words, 3 * forward, peak)
                 for name, t in times.items()}
    base = summaries["keras_baseline"]["per_second_median"]
    result["compare"] = {name: dict(summary, speedup=round(summary["per_second_median"] / base, 3))
                         for name, summary in summaries.items()}
  return result


SHAPE_FLAGS = ("hidden_size", "batch_size", "num_steps", "keep_prob")


def main(argv):
  del argv
  tf.get_logger().setLevel("ERROR")  # each variant is its own tf.function: retracing is expected
  # Decided as ptb.main decides (common/devices.py): the defaults time what a user gets.
  shape = {name: FLAGS[name].value for name in SHAPE_FLAGS if FLAGS[name].value is not None}
  config = train.resolve(
      configs.get_config(FLAGS.model, lstm=FLAGS.lstm, precision=FLAGS.precision,
                         jit_compile=FLAGS.jit_compile, **shape), model_dir=None,
      options=train.RunOptions(jit_compile_given=bool(FLAGS["jit_compile"].present)))
  # Process-wide, before any op: the threads ptb.main would run this config on.
  threads = FLAGS.intra_op_threads or intra_op_threads(config)
  common_flags.set_intra_op_threads(threads)
  benchmark.print_json(run(config, config.precision, config.jit_compile, FLAGS.compare,
                           FLAGS.steps, FLAGS.repeats))


if __name__ == "__main__":
  flags.DEFINE_enum("model", "small", list(configs.CONFIGS), "Configuration to time.")
  # The defaults are ptb.main's, so the plain command times the step a training run takes.
  flags.DEFINE_enum("precision", "auto", ["auto", "float32", BFLOAT16_MATMULS, "mixed_bfloat16"],
                    f"Compute dtype (auto: as ptb.main picks it; {BFLOAT16_MATMULS} needs "
                    "--jit_compile).")
  flags.DEFINE_bool("jit_compile", True, "XLA-compile the steps (by default off where the "
                    "LSTM runs on cuDNN, as in ptb.main).")
  flags.DEFINE_enum("lstm", "auto", list(configs.CHOICES["lstm"]), "How the LSTM runs "
                    "(common/lstm.py): reference, fast, or keras (cuDNN on a GPU); auto: as "
                    "ptb.main picks it (common/devices.py).")
  flags.DEFINE_integer("hidden_size", None, "Override the configuration's LSTM size.",
                       lower_bound=1)
  flags.DEFINE_integer("batch_size", None, "Override the configuration's batch.", lower_bound=1)
  flags.DEFINE_integer("num_steps", None, "Override the configuration's window.", lower_bound=1)
  flags.DEFINE_float("keep_prob", None, "Override the configuration's dropout keep fraction.",
                     lower_bound=0.05, upper_bound=1.0)
  common_flags.define_intra_op_threads_flag()
  flags.DEFINE_bool("compare", False, "Also time every fast path against a Keras baseline.")
  flags.DEFINE_integer("steps", 20, "Steps per timed block.", lower_bound=1)
  flags.DEFINE_integer("repeats", 5, "Timed blocks per variant.", lower_bound=1)
  errors.run(main)
