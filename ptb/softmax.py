"""The training loss over the 10,000-word softmax, with its matmuls in bfloat16 (under XLA).

The softmax is three quarters of a small train step's FLOPs: the logits [words, vocab] and the
two matmuls of their gradient. bfloat16 runs them 2x faster on CPUs with AVX-512 BF16 (and on
GPUs), but TensorFlow's bfloat16 MatMul kernels also round their *output* to bfloat16: with the
whole model in bfloat16, the logits come out with 8 mantissa bits and ptb falls 10 points of
valid perplexity behind float32 in the first epoch (README). XLA can
multiply bfloat16 inputs into a float32 result; here the inputs are rounded and every output,
logits included, stays float32 (what a GPU's tensor cores do too):

    forward   logits = x W + b          [words, hidden] x [hidden, vocab] -> float32
    backward  dlogits = softmax - onehot, scaled by the incoming gradient (float32)
              dx = dlogits W^T          [words, vocab] x [vocab, hidden]  -> float32
              dW = x^T dlogits          [hidden, words] x [words, vocab]  -> float32
"""
import tensorflow as tf

from common import bfloat16


def bfloat16_softmax_nll(x, kernel, bias, targets):
  """Summed negative log-likelihood of `targets` under softmax(x kernel + bias).

  Args:
    x: float32 [words, hidden], the last LSTM layer's outputs.
    kernel, bias: the softmax weights, float32 [hidden, vocab] and [vocab].
    targets: int32 [words].

  Returns:
    The float32 sum over words, with a gradient for x, kernel and bias. Only under XLA
    (`jit_compile`): TensorFlow's own kernels cannot return float32 from bfloat16.
  """
  kernel, bias = tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias)

  @tf.custom_gradient
  def nll(x, kernel, bias):
    x16, kernel16 = tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16)
    logits = tf.linalg.matmul(x16, kernel16, output_type=tf.float32) + bias  # [words, vocab]
    log_normaliser = tf.reduce_logsumexp(logits, axis=-1)
    total = tf.reduce_sum(log_normaliser - tf.gather(logits, targets, batch_dims=1))

    def gradient(upstream):
      dlogits = upstream * (tf.exp(logits - log_normaliser[:, None])
                            - tf.one_hot(targets, tf.shape(logits)[-1]))
      dlogits16 = tf.cast(dlogits, tf.bfloat16)
      dx = tf.linalg.matmul(dlogits16, kernel16, transpose_b=True, output_type=tf.float32)
      dkernel = tf.linalg.matmul(bfloat16.transposed(x16), dlogits16, output_type=tf.float32)
      return (tf.reshape(dx, tf.shape(x)), tf.reshape(dkernel, tf.shape(kernel)),
              tf.reduce_sum(dlogits, axis=0))

    return total, gradient

  return nll(x, kernel, bias)
