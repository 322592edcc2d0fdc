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


class LSTM(keras.layers.Layer):
  """One LSTM layer, Keras gate order (i, f, c, o) and weight layout, forget bias 0.

  The input projection of all time steps is one large matmul before the sequential loop;
  only the recurrent matmul and the gate arithmetic run step by step.
  """

  def __init__(self, units, initializer, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.initializer = initializer
    self._convert_input_args = False  # keep the float32 state float32 under a mixed policy

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(input_shape[-1], 4 * self.units), name="kernel",
                                  initializer=self.initializer)
    self.recurrent_kernel = self.add_weight(shape=(self.units, 4 * self.units),
                                            name="recurrent_kernel", initializer=self.initializer)
    # The tutorial's BasicLSTMCell(forget_bias=0.0): zero bias, no +1 on the forget gate.
    self.bias = self.add_weight(shape=(4 * self.units,), name="bias", initializer="zeros")

  def call(self, inputs, h, c):
    """inputs [batch, steps, in], h and c [batch, units] -> outputs [batch, steps, units], h, c.

    Under a mixed policy the matmuls run in the compute dtype (bfloat16) while the cell
    state c and the gate arithmetic stay float32.
    """
    compute = self.compute_dtype
    projected = tf.einsum("bti,ig->tbg", tf.cast(inputs, compute), self.kernel)  # [T, B, 4H]
    projected = tf.cast(projected, tf.float32) + tf.cast(self.bias, tf.float32)
    recurrent_kernel = tf.convert_to_tensor(self.recurrent_kernel)  # compute dtype

    def step(carry, projected_t):
      h, c = carry
      gates = projected_t + tf.cast(tf.matmul(tf.cast(h, compute), recurrent_kernel), tf.float32)
      i, f, g, o = tf.split(gates, 4, axis=-1)
      c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
      h = tf.sigmoid(o) * tf.tanh(c)
      return h, c

    if projected.shape[0] is not None:
      # Static window (training, evaluation): unrolled, which is 1.7x faster than a loop on CPU.
      outputs = []
      for projected_t in tf.unstack(projected):
        h, c = step((h, c), projected_t)
        outputs.append(h)
      return tf.stack(outputs, axis=1), h, c
    # Any length (the exported scoring signature): a graph loop over time.
    hs, cs = tf.scan(step, projected, initializer=(h, c))
    return tf.transpose(hs, [1, 0, 2]), hs[-1], cs[-1]


class PTBModel(keras.layers.Layer):
  """Embedding, `num_layers` LSTMs with dropout between them, and a softmax over the words.

  A Layer rather than a keras.Model: we never `fit` it, and a Model inside a SavedModel
  gets a default signature that cannot express the (ids, state) call.
  """

  def __init__(self, config, precision="float32", **kwargs):
    super().__init__(dtype=precision, **kwargs)
    self._convert_input_args = False  # the state stays float32 under a mixed policy
    self.config = config
    # Zaremba et al. sec. 4: all parameters uniform in [-init_scale, init_scale] (the
    # tutorial's variable-scope initializer, which also covers the softmax bias).
    init = keras.initializers.RandomUniform(-config.init_scale, config.init_scale)
    self.embedding = keras.layers.Embedding(config.vocab_size, config.hidden_size,
                                            embeddings_initializer=init, name="embedding",
                                            dtype=precision)
    self.lstms = [LSTM(config.hidden_size, init, name=f"lstm_{i}", dtype=precision)
                  for i in range(config.num_layers)]
    for i, lstm in enumerate(self.lstms):
      setattr(self, f"lstm_{i}", lstm)  # tf.train.Checkpoint does not follow Keras 3 lists
    self.softmax = keras.layers.Dense(config.vocab_size, kernel_initializer=init,
                                      bias_initializer=init, name="softmax", dtype=precision)
    # Dropout only between layers, never on the recurrent connections (Zaremba et al. sec. 3).
    self.dropout_rate = 1.0 - config.keep_prob

  def zero_state(self, batch_size):
    """[num_layers, 2, batch, hidden] zeros: the state at the start of an epoch or evaluation."""
    return tf.zeros([self.config.num_layers, 2, batch_size, self.config.hidden_size])

  def call(self, inputs, state, dropout_seed=None):
    """Runs one window.

    Args:
      inputs: int32 word ids [batch, steps].
      state: [num_layers, 2, batch, hidden], the final state of the previous window.
      dropout_seed: int32 [2] stateless seed; None evaluates (no dropout).

    Returns:
      logits [batch, steps, vocab] and the new state, shaped like `state`.
    """
    x = self._dropout(self.embedding(inputs), dropout_seed, 0)  # [batch, steps, hidden]
    final_states = []
    for layer, lstm in enumerate(self.lstms):
      x, h, c = lstm(x, state[layer, 0], state[layer, 1])
      x = self._dropout(x, dropout_seed, layer + 1)
      final_states.append(tf.stack([tf.cast(h, tf.float32), c]))
    return self.softmax(x), tf.stack(final_states)

  def _dropout(self, x, seed, site):
    if seed is None or self.dropout_rate == 0.0:
      return x
    return tf.nn.experimental.stateless_dropout(x, self.dropout_rate, seed + [0, site])


def token_nll(logits, targets):
  """Summed negative log-likelihood of `targets` [batch, steps] in float32."""
  return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
      targets, tf.cast(logits, tf.float32)))


def forward_flops_per_token(config):
  """Matmul FLOPs of one word's forward pass (2 per multiply-add; elementwise ops left out).

  Per layer the input projection and the recurrent matmul, each [hidden] x [hidden, 4 hidden];
  then the softmax [hidden] x [hidden, vocab]. The backward pass costs twice the forward.
  """
  hidden = config.hidden_size
  lstm = config.num_layers * 2 * (2 * hidden * 4 * hidden)
  return lstm + 2 * hidden * config.vocab_size
