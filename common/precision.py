"""Which compute dtype to use: `--precision=auto` picks bfloat16 where hardware is fast at it."""
import functools

import tensorflow as tf

CHOICES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@functools.lru_cache(maxsize=None)
def has_fast_bfloat16():
  """True on GPUs of compute capability 8.0+ (A100, H100) and CPUs with AVX-512 BF16 or AMX.

  Elsewhere bfloat16 matmuls are emulated and slower than float32.
  """
  for gpu in tf.config.list_physical_devices("GPU"):
    capability = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
    if capability >= (8, 0):
      return True
  try:
    with open("/proc/cpuinfo") as f:
      flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
  except OSError:
    return False
  return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve(precision):
  """'auto' -> 'mixed_bfloat16' where has_fast_bfloat16(), else 'float32'; others unchanged."""
  if precision != "auto":
    return precision
  return "mixed_bfloat16" if has_fast_bfloat16() else "float32"
