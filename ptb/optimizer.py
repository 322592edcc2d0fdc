"""The update rules: the tutorial's plain SGD, and Adam or RMSprop for character models.

Gradients arrive already summed over replicas and clipped (ptb.train), so the update runs once
in cross-replica context and every replica's copy of a variable takes the same step.
"""
import keras
import tensorflow as tf

OPTIMIZERS = ("sgd", "adam", "rmsprop")


def make_optimizer(config):
  """None for plain SGD (`apply_gradients` does it); else the Keras optimizer `config` names.

  Adam and RMSprop get no clipping or weight decay of their own: ptb.train clips by global
  norm as the tutorial does for SGD. RMSprop's rho 0.95 is char-rnn's decay_rate.
  """
  if config.optimizer == "sgd":
    return None
  if config.optimizer == "adam":
    return keras.optimizers.Adam(config.learning_rate)
  return keras.optimizers.RMSprop(config.learning_rate, rho=0.95)


def apply_gradients(optimizer, variables, grads, lr):
  """One update of `variables` by `grads` at learning rate `lr`, called in a replica.

  Plain SGD keeps the embedding's gradient sparse (only the rows of this window); a Keras
  `optimizer` is called in cross-replica context, where it does not all-reduce again.
  """

  def sgd(variable, grad):
    if isinstance(grad, tf.IndexedSlices):
      return variable.scatter_sub(tf.IndexedSlices(lr * grad.values, grad.indices))
    return variable.assign_sub(lr * grad)

  def update_all(strategy, grads):
    if optimizer is not None:
      optimizer.learning_rate.assign(lr)
      optimizer.apply(grads, variables)
      return
    for variable, grad in zip(variables, grads):
      strategy.extended.update(variable.value, sgd, args=(grad,), group=False)

  tf.distribute.get_replica_context().merge_call(update_all, args=(grads,))
