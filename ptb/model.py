"""The Zaremba et al. (2014) LSTM language model with its state passed explicitly.

    ids [batch, steps] -> embedding -> dropout -> (LSTM -> dropout) x num_layers -> softmax

The recurrent state is one tensor, `[num_layers, 2 (h, c), batch, hidden]`: the caller feeds
the final state of one window in as the initial state of the next (truncated BPTT). Passing
it explicitly, rather than keeping it in Keras `stateful=True` variables, keeps the model a
pure function of (ids, state): the same code trains, evaluates with batch 1, runs under
tf.distribute (each replica carries the state of its own rows) and exports a streaming step
signature.
"""
import keras
import tensorflow as tf

from common import bfloat16
from common.lstm import LSTM

# The precision that keeps the model float32 but runs the training loss's matmuls on
# bfloat16 inputs with float32 outputs (common.bfloat16; needs XLA).
BFLOAT16_MATMULS = "bfloat16_matmuls"


class PTBModel(keras.layers.Layer):
  """Embedding, `num_layers` LSTMs with dropout between them, and a softmax over the words.

  A Layer rather than a keras.Model: we never `fit` it, and a Model inside a SavedModel
  gets a default signature that cannot express the (ids, state) call.
  """

  def __init__(self, config, precision="float32", **kwargs):
    # bfloat16_matmuls: the layers compute in float32; in the training loss (nll) every
    # matmul takes bfloat16 inputs and returns float32 (common.bfloat16).
    self.bfloat16_matmuls = precision == BFLOAT16_MATMULS
    precision = "float32" if self.bfloat16_matmuls else precision
    super().__init__(dtype=precision, **kwargs)
    # The state stays float32 under a mixed policy (Keras would cast it to bfloat16).
    self._convert_input_args = False
    self._allow_non_tensor_positional_args = True  # numpy ids are fine
    self.config = config
    # Zaremba et al. sec. 4: all parameters uniform in [-init_scale, init_scale] (the
    # tutorial's variable-scope initializer, which also covers the softmax bias).
    init = keras.initializers.RandomUniform(-config.init_scale, config.init_scale)
    self.embedding = keras.layers.Embedding(config.vocab_size, config.hidden_size,
                                            embeddings_initializer=init, name="embedding",
                                            dtype=precision)
    self.lstms = [_lstm(config, init, f"lstm_{i}", precision) for i in range(config.num_layers)]
    for i, lstm in enumerate(self.lstms):
      setattr(self, f"lstm_{i}", lstm)  # tf.train.Checkpoint does not follow Keras 3 lists
    self.softmax = keras.layers.Dense(config.vocab_size, kernel_initializer=init,
                                      bias_initializer=init, name="softmax", dtype=precision)
    # Dropout only between layers, never on the recurrent connections (Zaremba et al. sec. 3).
    self.dropout_rate = 1.0 - config.keep_prob

  def create_variables(self):
    """Creates the weights now if no call has yet (Keras creates them on the first call)."""
    if not self.weights:
      self(tf.zeros([1, 1], tf.int32), self.zero_state(1))

  def zero_state(self, batch_size):
    """[num_layers, 2, batch, hidden] zeros: the state at the start of an epoch or evaluation."""
    return tf.zeros([self.config.num_layers, 2, batch_size, self.config.hidden_size])

  def call(self, inputs, state, dropout_seed=None, rows=None):
    """Runs one window.

    Args:
      inputs: int32 word ids [batch, steps].
      state: [num_layers, 2, batch, hidden], the final state of the previous window.
      dropout_seed: int32 [2] stateless seed; None evaluates (no dropout).
      rows: int32 [first row, global batch size] when `inputs` are some rows of a larger batch
        (a tf.distribute replica): the dropout masks are those rows of the global batch's
        masks, so any number of replicas drops exactly what one device would.

    Returns:
      logits [batch, steps, vocab] and the new state, shaped like `state`.
    """
    outputs, state = self.hidden(inputs, state, dropout_seed, rows)
    return self.softmax(outputs), state

  def nll(self, inputs, targets, state, dropout_seed=None, rows=None, under_xla=False):
    """The training loss: summed NLL of `targets` [batch, steps], and the new state.

    `under_xla`: the caller compiles with XLA (the LSTM layers' written-out backward pass
    then stops XLA's fusion at every step, `common.lstm`); `bfloat16_matmuls` needs it.
    """
    outputs, state = self.hidden(inputs, state, dropout_seed, rows, self.bfloat16_matmuls,
                                 under_xla)
    if self.bfloat16_matmuls:
      words = tf.reshape(outputs, [-1, self.config.hidden_size])  # [batch * steps, hidden]
      # float32 logits [batch * steps, vocab]: TensorFlow's bfloat16 MatMul would round them.
      logits = bfloat16.matmul(words, self.softmax.kernel) + self.softmax.bias
      return token_nll(logits, targets, row_groups=4), state
    return token_nll(self.softmax(outputs), targets), state

  def hidden(self, inputs, state, dropout_seed=None, rows=None, bfloat16_matmuls=False,
             under_xla=False):
    """`call` up to the softmax: the last layer's outputs [batch, steps, hidden], the state.

    `bfloat16_matmuls` (XLA only): our LSTM layers' matmuls take bfloat16 inputs.
    """
    state = tf.convert_to_tensor(state, tf.float32)
    x = self._dropout(self.embedding(inputs), dropout_seed, 0, rows)  # [batch, steps, hidden]
    final_states = []
    for layer, lstm in enumerate(self.lstms):
      if self.config.fused_lstm:
        x, h, c = lstm(x, state[layer, 0], state[layer, 1], bfloat16_matmuls=bfloat16_matmuls,
                       under_xla=under_xla)
      else:
        x, h, c = lstm(x, initial_state=[state[layer, 0], state[layer, 1]])
      x = self._dropout(x, dropout_seed, layer + 1, rows)
      final_states.append(tf.stack([tf.cast(h, tf.float32), tf.cast(c, tf.float32)]))
    return x, tf.stack(final_states)

  def _dropout(self, x, seed, site, rows):
    """tf.nn.experimental.stateless_dropout, with the mask drawn for the global batch."""
    if seed is None or self.dropout_rate == 0.0:
      return x
    shape = tf.shape(x)  # [batch, steps, hidden]
    first_row, global_batch = (rows[0], rows[1]) if rows is not None else (0, shape[0])
    uniform = tf.random.stateless_uniform(tf.concat([[global_batch], shape[1:]], 0),
                                          seed + [0, site], dtype=x.dtype)
    keep = tf.slice(uniform, [first_row, 0, 0], shape) >= self.dropout_rate
    scale = tf.cast(1.0 / (1.0 - self.dropout_rate), x.dtype)
    return tf.where(keep, x * scale, tf.zeros_like(x))


def _lstm(config, init, name, precision):
  """One LSTM layer: ours, or keras.layers.LSTM (cuDNN on GPU) with the same weights."""
  if config.fused_lstm:
    return LSTM(config.hidden_size, init, init, name=name, dtype=precision)
  # Forget bias 0 and zero biases, as common.lstm and the tutorial's BasicLSTMCell.
  return keras.layers.LSTM(config.hidden_size, return_sequences=True, return_state=True,
                           kernel_initializer=init, recurrent_initializer=init,
                           unit_forget_bias=False, name=name, dtype=precision)


def token_nll(logits, targets, row_groups=1):
  """Summed negative log-likelihood of `targets` [batch, steps] under `logits`, in float32.

  log-sum-exp minus the target's logit: the same number as
  tf.nn.sparse_softmax_cross_entropy_with_logits, 2x faster on CPU here, because that op also
  computes the whole softmax for its gradient even when no gradient is taken (evaluation).
  `row_groups`: the [batch * steps, vocab] logits go through it in this many independent
  slices of rows, which XLA runs side by side on two cores (each pass over them is
  otherwise one thread's loop). Measured, same process: the ptb default step
  (bfloat16_matmuls + XLA) 1.02x faster with 4 (27.59 against 28.17 ms; 8 no faster); the
  float32 steps and the evaluation step 1-5% slower, so they keep 1.
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
  """`token_nll` of logits [rows, vocab] and targets [rows].

  The gradient, softmax - one_hot(targets), reuses the exponentials of the loss instead of
  taking them again: the ptb default step 1.04x faster (28.42 against 29.54 ms).
  """
  top = tf.reduce_max(logits, axis=-1, keepdims=True)
  top = tf.where(tf.math.is_finite(top), top, tf.zeros_like(top))  # as tf.reduce_logsumexp
  exps = tf.exp(logits - top)
  sums = tf.reduce_sum(exps, axis=-1, keepdims=True)
  log_sum_exp = tf.squeeze(tf.math.log(sums) + top, -1)
  target_logits = tf.gather(logits, targets, batch_dims=1)

  def gradient(upstream):  # a scalar; targets get none
    return exps * (upstream / sums) - upstream * tf.one_hot(targets, tf.shape(logits)[-1]), None

  return tf.reduce_sum(log_sum_exp - target_logits), gradient


def forward_flops_per_token(config):
  """Matmul FLOPs of one word's forward pass (2 per multiply-add; elementwise ops left out).

  Per layer the input projection and the recurrent matmul, each [hidden] x [hidden, 4 hidden];
  then the softmax [hidden] x [hidden, vocab]. The backward pass costs twice the forward.
  """
  hidden = config.hidden_size
  lstm = config.num_layers * 2 * (2 * hidden * 4 * hidden)
  return lstm + 2 * hidden * config.vocab_size
