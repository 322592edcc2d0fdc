"""The update rules: the tutorial's plain SGD, and Adam or RMSprop for character models.

Gradients arrive summed over replicas and clipped (ptb.train), so every replica's copy of a
variable takes the same step.
"""
import keras
import tensorflow as tf

OPTIMIZERS = ("sgd", "adam", "rmsprop")


def make_optimizer(config):
  """None for plain SGD (`apply_gradients` does it); else the Keras optimizer `config` names.

  Adam and RMSprop get no clipping or weight decay of their own: ptb.train clips by global
  norm as the tutorial does for SGD. RMSprop's rho 0.95 is char-rnn's decay_rate. Their rate
  is a variable of theirs, set each epoch by `set_learning_rate`.
  """
  if config.optimizer == "sgd":
    return None
  if config.optimizer == "adam":
    return keras.optimizers.Adam(config.learning_rate)
  return keras.optimizers.RMSprop(config.learning_rate, rho=0.95)


def set_learning_rate(optimizer, lr):
  """The Keras optimizer's rate for the next steps (plain SGD takes it as a step argument)."""
  if optimizer is not None:
    optimizer.learning_rate.assign(lr)


def apply_gradients(optimizer, variables, grads, lr):
  """One update of `variables` by `grads` (summed over replicas), called in a replica.

  Plain SGD at rate `lr` keeps the embedding's gradient sparse (only the rows of this window)
  and updates once, in cross-replica context. A Keras `optimizer` sums the replicas' gradients
  itself, so it gets each replica's share of the sum (exact for a power-of-two replica count),
  dense: summed as IndexedSlices, the rows would repeat and Adam would square each part.
  """
  if optimizer is not None:
    share = 1.0 / tf.distribute.get_replica_context().num_replicas_in_sync
    optimizer.apply([tf.convert_to_tensor(grad) * share for grad in grads], variables)
    return

  def sgd(variable, grad):
    if isinstance(grad, tf.IndexedSlices):
      return variable.scatter_sub(tf.IndexedSlices(lr * grad.values, grad.indices))
    return variable.assign_sub(lr * grad)

  def update_all(strategy, grads):
    for variable, grad in zip(variables, grads):
      strategy.extended.update(variable.value, sgd, args=(grad,), group=False)

  tf.distribute.get_replica_context().merge_call(update_all, args=(grads,))

