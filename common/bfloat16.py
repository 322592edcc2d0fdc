"""Matmuls on bfloat16 inputs with float32 results, for XLA-compiled training steps.

What a GPU's tensor cores (and PyTorch's `float32_matmul_precision="medium"`) do: the inputs
are rounded to bfloat16, the products are summed and returned in float32. TensorFlow's own
bfloat16 MatMul kernels also round the result to bfloat16; only XLA returns float32
(`tf.linalg.matmul(..., output_type=tf.float32)`), so these run only under `jit_compile`.
"""
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla


def transposed(x):
  """x^T, materialised: XLA would fold the transpose into the next dot, whose slow path then
  takes 2x as long on our CPU (11.6 against 5.4 ms for [200, 400] x [400, 10000], measured)."""
  return xla.optimization_barrier([tf.transpose(x)])[0]


def matmul(a, b):
  """a [m, k] x b [k, n] -> float32 [m, n] from bfloat16-rounded inputs; same for gradients."""

  @tf.custom_gradient
  def product(a, b):
    a16, b16 = tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)
    result = tf.linalg.matmul(a16, b16, output_type=tf.float32)

    def gradient(upstream):  # [m, n]
      upstream16 = tf.cast(upstream, tf.bfloat16)
      da = tf.linalg.matmul(upstream16, b16, transpose_b=True, output_type=tf.float32)
      db = tf.linalg.matmul(transposed(a16), upstream16, output_type=tf.float32)
      return tf.reshape(da, tf.shape(a)), tf.reshape(db, tf.shape(b))

    return tf.reshape(result, [tf.shape(a)[0], tf.shape(b)[1]]), gradient

  return product(a, b)
