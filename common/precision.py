"""Which compute dtype to use: `--precision=auto` is decided with the hardware (common.devices):
bfloat16 on a CPU fast at it, float32 elsewhere (on a GPU TensorFlow runs it as TF32)."""
from common import devices

CHOICES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def resolve(precision, hardware=None):
  """'auto' -> 'mixed_bfloat16' on a CPU with AVX-512 BF16 or AMX, else 'float32' (a GPU's
  float32 is TF32 there: `common.devices`); others unchanged. `hardware`: default visible."""
  if precision != "auto":
    return precision
  return devices.auto_precision(hardware or devices.visible(), "mixed_bfloat16")[0]
