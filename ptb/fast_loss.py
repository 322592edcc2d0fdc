"""The language model's loss, fast: summed softmax cross-entropy with its gradient written out.

`token_nll` gives the number of tf.nn.sparse_softmax_cross_entropy_with_logits summed (what
`--lstm=reference` trains on), faster on a CPU: it never forms the softmax when no gradient
is taken (evaluation), its gradient reuses the loss's exponentials, and in training it can run
in row groups that XLA spreads over the cores. `bfloat16_logits` is the softmax layer's
matmul on bfloat16 inputs with float32 outputs. PERFORMANCE.md has what each buys.
"""
import tensorflow as tf

from common import bfloat16


def bfloat16_logits(outputs, softmax):
  """float32 logits [batch * steps, vocab] of `outputs` [batch, steps, hidden] under the Dense
  layer `softmax`, its matmul from bfloat16-rounded inputs (XLA only; TensorFlow's own
  bfloat16 MatMul would round the result too)."""
  words = tf.reshape(outputs, [-1, outputs.shape[-1]])  # [batch * steps, hidden]
  return bfloat16.matmul(words, softmax.kernel) + softmax.bias


def token_nll(logits, targets, row_groups=1):
  """Summed negative log-likelihood of `targets` [batch, steps] under `logits`, in float32.

  log-sum-exp minus the target's logit. `row_groups`: the [batch * steps, vocab] logits go
  through it in this many independent slices of rows, which XLA runs side by side on two
  cores (each pass over them is otherwise one thread's loop).
  """
  vocab = logits.shape[-1] or tf.shape(logits)[-1]
  logits = tf.reshape(tf.cast(logits, tf.float32), [-1, vocab])  # [rows, vocab]
  targets = tf.reshape(targets, [-1])
  rows = logits.shape[0]
  if rows is None or rows < row_groups:
    return _summed_nll(logits, targets)
  sizes = [rows // row_groups + (group < rows % row_groups) for group in range(row_groups)]
  return tf.add_n([_summed_nll(group_logits, group_targets) for group_logits, group_targets
                   in zip(tf.split(logits, sizes), tf.split(targets, sizes))])


@tf.custom_gradient
def _summed_nll(logits, targets):
  """`token_nll` of logits [rows, vocab] and targets [rows]; the gradient, softmax -
  one_hot(targets), reuses the exponentials of the loss instead of taking them again."""
  top = tf.reduce_max(logits, axis=-1, keepdims=True)
  top = tf.where(tf.math.is_finite(top), top, tf.zeros_like(top))  # as tf.reduce_logsumexp
  exps = tf.exp(logits - top)
  sums = tf.reduce_sum(exps, axis=-1, keepdims=True)
  log_sum_exp = tf.squeeze(tf.math.log(sums) + top, -1)
  target_logits = tf.gather(logits, targets, batch_dims=1)

  def gradient(upstream):  # a scalar; targets get none
    return exps * (upstream / sums) - upstream * tf.one_hot(targets, tf.shape(logits)[-1]), None

  return tf.reduce_sum(log_sum_exp - target_logits), gradient
