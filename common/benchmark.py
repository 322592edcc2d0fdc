"""Timing both apps' steps the same way: warm-up, interleaved repeats, ratios in one process.

Absolute times drift on shared machines; ratios of variants timed side by side (round
robin, so drift hits them alike) hold. Every number printed is measured in this process.
"""
import json
import os
import platform
import statistics
import time

import tensorflow as tf


def device_name():
  """The GPU's name when TensorFlow sees one, else the CPU model and core count."""
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
  model = platform.processor() or "CPU"
  try:
    with open("/proc/cpuinfo") as f:
      model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"{model} ({os.cpu_count()} cores)"


def peak_matmul_flops(dtype=tf.float32, n=2048, repeats=10):
  """FLOP/s of large square matmuls on all cores: this machine's practical peak for `dtype`.

  One [n, n] x [n, n] matmul per core, independent, so that the executor runs them at once:
  the peak of the whole CPU even when each op runs on one thread (mnist_rnn sets that; one
  matmul alone then measured 109 GFLOP/s on our 2 cores, half the machine). On a GPU the
  products queue on the one device.
  """
  copies = 1 if tf.config.list_physical_devices("GPU") else min(os.cpu_count() or 1, 32)
  lefts = [tf.cast(tf.random.normal([n, n]), dtype) for _ in range(copies)]  # distinct: no CSE
  right = tf.cast(tf.random.normal([n, n]), dtype)
  products = tf.function(lambda lefts, right: [tf.matmul(a, right) for a in lefts])
  products(lefts, right)[-1].numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), products(lefts, right))
    best = min(best, time.perf_counter() - start)
  return copies * 2 * n ** 3 / best


class Elapsed(float):
  """Seconds a variant measured itself: returned by a variant whose call has setup and
  teardown that are not steps (a `model.fit` call), so only the steps count."""


def time_interleaved(variants, steps, repeats, warmup=3):
  """Seconds per step of each variant: `repeats` rounds of `steps` calls, round robin.

  Args:
    variants: name -> zero-argument callable running one step and returning a tensor, or an
      `Elapsed` for the seconds of its steps.
    steps: calls per timed block (the last result is fetched, so the block is finished).
    repeats: timed blocks per variant.
    warmup: untimed calls per variant first (tracing, XLA compilation).

  Returns:
    name -> list of `repeats` seconds-per-step measurements.
  """
  for fn in variants.values():
    for _ in range(warmup):
      _fetch(fn())
  times = {name: [] for name in variants}
  for _ in range(repeats):
    for name, fn in variants.items():
      start = time.perf_counter()
      for _ in range(steps):
        out = fn()
      _fetch(out)
      seconds = out if isinstance(out, Elapsed) else time.perf_counter() - start
      times[name].append(seconds / steps)
  return times


def _fetch(out):
  tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)


def rate_summary(seconds_per_step, items_per_step, flops_per_step, peak_flops):
  """Median and spread of items/s, ms/step and utilisation of the measured peak."""
  rates = sorted(items_per_step / s for s in seconds_per_step)
  median_seconds = statistics.median(seconds_per_step)
  achieved = flops_per_step / median_seconds
  return {"per_second_median": round(statistics.median(rates), 1),
          "per_second_min": round(rates[0], 1), "per_second_max": round(rates[-1], 1),
          "ms_per_step": round(1e3 * median_seconds, 3),
          "achieved_flops_per_second": round(achieved),
          "utilisation": round(achieved / peak_flops, 4)}


def print_json(result):
  print(json.dumps(result, indent=2, sort_keys=True))
