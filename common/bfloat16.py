"""Matmuls on bfloat16 inputs with float32 results, for XLA-compiled training steps.

What a GPU's tensor cores (and PyTorch's `float32_matmul_precision="medium"`) do: the inputs
are rounded to bfloat16, the products are summed and returned in float32. TensorFlow's own
bfloat16 MatMul kernels also round the result to bfloat16; only XLA returns float32
(`tf.linalg.matmul(..., output_type=tf.float32)`), so these run only under `jit_compile`.
"""
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla


def transposed(x):
  """x^T as a batch of one, [1, n, m], for the left operand of a bfloat16 -> float32 matmul.

  XLA:CPU (TensorFlow 2.21) is fast at such a dot only when its left operand is a plain
  row-major matrix, so the transpose must not be folded into the dot. Measured on our CPU for
  [200, 400] x [400, 10000]: this form 9.7 ms; `transpose_a`, a plain `tf.transpose` or one
  behind a rank-2 optimization barrier 11.0-11.6 ms (the ptb step 38.3 against 32.4 ms); the
  batch of one without the barrier fails ("Unsupported element type for DotThunk::Execute:
  BF16 x BF16 = F32"). The caller reshapes the [1, n, k] product back to rank 2.
  """
  return xla.optimization_barrier(tf.transpose(x)[None])[0]


def matmul(a, b):
  """a [m, k] x b [k, n] -> float32 [m, n] from bfloat16-rounded inputs; same for gradients."""

  @tf.custom_gradient
  def product(a, b):
    a16, b16 = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
    result = tf.linalg.matmul(a16, b16, output_type=tf.float32)

    def gradient(upstream):  # [m, n]
      upstream16 = tf.cast(upstream, tf.bfloat16)
      da = tf.linalg.matmul(upstream16, b16, transpose_b=True, output_type=tf.float32)
      db = tf.linalg.matmul(transposed(a16), upstream16, output_type=tf.float32)  # [1, k, n]
      return tf.reshape(da, tf.shape(a)), tf.reshape(db, tf.shape(b))

    return tf.reshape(result, [tf.shape(a)[0], tf.shape(b)[1]]), gradient

  return product(a, b)
