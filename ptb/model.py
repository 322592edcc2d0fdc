"""The language model of Zaremba, Sutskever & Vinyals (2014), with its state passed explicitly.

    ids [batch, steps] -> embedding -> dropout -> (LSTM -> dropout) x num_layers -> softmax

The recurrent state is one tensor, `[num_layers, 2 (h, c), batch, hidden]`: the caller feeds
the final state of one window in as the initial state of the next (truncated BPTT). Passing it
explicitly, rather than keeping it in Keras `stateful=True` variables, keeps the model a pure
function of (ids, state): the same code trains, evaluates with batch 1, runs under
tf.distribute (each replica carries the state of its own rows) and exports a streaming step.

`config.lstm` picks how the LSTM runs (common/lstm.py: reference, fast, keras; auto: keras on
a GPU without XLA, else fast, common/devices.py), the same model each way; `config.cell` swaps
the LSTM for a GRU or a plain tanh RNN (char-rnn's `-model`).
"""
import dataclasses

import keras
import tensorflow as tf

from common import devices, lstm
from common.errors import UserError
from ptb import fast_loss

# Keeps the model float32 but runs the training step's matmuls on bfloat16 inputs with float32
# outputs (common/bfloat16.py; needs XLA).
BFLOAT16_MATMULS = "bfloat16_matmuls"
# The fast LSTM's chains of rows on a CPU without XLA (config.row_groups 0): the fastest count
# for the character models on 2 cores, measured (PERFORMANCE.md); mnist_rnn's is 2.
ROW_GROUPS = 4
SOFTMAX_SHARE = 0.1  # of the forward FLOPs, under which a model is bound by its recurrence


class PTBModel(keras.layers.Layer):
  """Embedding, `num_layers` recurrent layers with dropout between them, softmax over the vocab.

  A Layer rather than a keras.Model: we never `fit` it, and a Model inside a SavedModel gets a
  default signature that cannot express the (ids, state) call.
  """

  def __init__(self, config, precision="float32", jit_compile=False, **kwargs):
    self.bfloat16_matmuls = precision == BFLOAT16_MATMULS
    dtype = "float32" if self.bfloat16_matmuls else precision
    super().__init__(dtype=dtype, **kwargs)
    self._convert_input_args = False  # the state stays float32 under a mixed policy
    self._allow_non_tensor_positional_args = True  # numpy ids are fine
    # How it runs on this hardware (lstm auto resolved; cuDNN only outside XLA).
    decisions = plan(config, precision, jit_compile)
    self.cudnn = decisions.cudnn
    config = dataclasses.replace(config, lstm=decisions.lstm)
    self.config = config
    # Sec. 4: every parameter uniform in [-init_scale, init_scale] (the tutorial's
    # variable-scope initializer, which also covers the softmax bias); the char config's
    # embedding starts N(0, 1) instead (config.embedding_init). A new initializer for each
    # weight: a Keras 3 initializer made without a seed returns the start of one random stream
    # at every call, so a shared one would start every weight as a copy of the others' values.
    def uniform():
      return keras.initializers.RandomUniform(-config.init_scale, config.init_scale)
    embedding_init = (uniform() if config.embedding_init == "uniform"
                      else keras.initializers.RandomNormal(0.0, 1.0))
    # All made before any layer (keras.layers.LSTM draws a seed of its own when made), so the
    # weights do not depend on --lstm: two per LSTM layer, then the softmax's two.
    inits = [uniform() for _ in range(2 * config.num_layers + 2)]
    self.embedding = keras.layers.Embedding(config.vocab_size, config.hidden_size,
                                            embeddings_initializer=embedding_init,
                                            name="embedding", dtype=dtype)
    self.lstms = [_recurrent_layer(config, inits[2 * i:2 * i + 2], f"lstm_{i}", dtype,
                                   self.bfloat16_matmuls, jit_compile, decisions)
                  for i in range(config.num_layers)]
    for i, layer in enumerate(self.lstms):
      setattr(self, f"lstm_{i}", layer)  # tf.train.Checkpoint does not follow Keras 3 lists
    self.softmax = keras.layers.Dense(config.vocab_size, kernel_initializer=inits[-2],
                                      bias_initializer=inits[-1], name="softmax", dtype=dtype)
    # Sec. 3: dropout only between layers, never on the recurrent connections.
    self.dropout_rate = 1.0 - config.keep_prob

  def create_variables(self):
    """Creates the weights now if no call has yet (Keras creates them on the first call)."""
    if not self.weights:
      self(tf.zeros([1, 1], tf.int32), self.zero_state(1))

  def zero_state(self, batch_size):
    """[num_layers, 2, batch, hidden] zeros: the state at the start of an epoch or evaluation."""
    return tf.zeros([self.config.num_layers, 2, batch_size, self.config.hidden_size])

  def call(self, inputs, state, dropout_seed=None, rows=None):
    """Runs one window: int32 ids [batch, steps] and the previous window's final state ->
    logits [batch, steps, vocab] and the new state.

    `dropout_seed`: int32 [2] stateless seed; None evaluates (no dropout). `rows`: int32
    [first row, global batch size] when `inputs` are some rows of a larger batch (a
    tf.distribute replica): the dropout masks are those rows of the global batch's masks.
    """
    outputs, state = self.hidden(inputs, state, dropout_seed, rows)
    return self.softmax(outputs), state

  def nll(self, inputs, targets, state, dropout_seed=None, rows=None):
    """The training loss: the NLL of `targets` [batch, steps] summed over the window, and the
    new state. The caller divides by the batch size (sec. 4: summed over time steps)."""
    outputs, state = self.hidden(inputs, state, dropout_seed, rows, training=True)
    if self.config.lstm == "reference":
      logits = tf.cast(self.softmax(outputs), tf.float32)
      return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)), state
    if self.bfloat16_matmuls:
      return fast_loss.token_nll(fast_loss.bfloat16_logits(outputs, self.softmax), targets,
                                 row_groups=4), state
    return fast_loss.token_nll(self.softmax(outputs), targets), state

  def hidden(self, inputs, state, dropout_seed=None, rows=None, training=False):
    """`call` up to the softmax: the last layer's outputs [batch, steps, hidden], the state."""
    state = tf.convert_to_tensor(state, tf.float32)
    x = self._dropout(self.embedding(inputs), dropout_seed, 0, rows)  # [batch, steps, hidden]
    final_states = []
    for layer, recurrent in enumerate(self.lstms):
      x, h, c = recurrent(x, state[layer, 0], state[layer, 1], training=training)
      x = self._dropout(x, dropout_seed, layer + 1, rows)
      final_states.append(tf.stack([tf.cast(h, tf.float32), tf.cast(c, tf.float32)]))
    return x, tf.stack(final_states)

  def _dropout(self, x, seed, site, rows):
    """tf.nn.experimental.stateless_dropout, with the mask drawn for the global batch, so any
    number of replicas drops exactly what one device would."""
    if seed is None or self.dropout_rate == 0.0:
      return x
    shape = tf.shape(x)  # [batch, steps, hidden]
    first_row, global_batch = (rows[0], rows[1]) if rows is not None else (0, shape[0])
    uniform = tf.random.stateless_uniform(tf.concat([[global_batch], shape[1:]], 0),
                                          seed + [0, site], dtype=x.dtype)
    keep = tf.slice(uniform, [first_row, 0, 0], shape) >= self.dropout_rate
    scale = tf.cast(1.0 / (1.0 - self.dropout_rate), x.dtype)
    return tf.where(keep, x * scale, tf.zeros_like(x))


def _recurrent_layer(config, inits, name, dtype, bfloat16_matmuls, jit_compile, decisions):
  """One recurrent layer, called as layer(x, h, c, training) -> (outputs, h, c); `inits`: the
  initializers of its input and recurrent kernels.

  Forget bias 0 and zero biases: the tutorial's BasicLSTMCell(forget_bias=0.0).
  """
  if config.cell != "lstm" or config.lstm == "keras":
    return lstm.keras_layer(config.cell, config.hidden_size, *inits, forget_bias=0.0,
                            name=name, dtype=dtype, cudnn=decisions.cudnn)
  return lstm.LSTM(config.hidden_size, *inits, forget_bias=0.0,
                   implementation=config.lstm, bfloat16_matmuls=bfloat16_matmuls,
                   row_groups=max(decisions.row_groups, 1), under_xla=jit_compile,
                   cell_op=decisions.cell_op, name=name, dtype=dtype)


def recurrence_bound(config):
  """Whether the softmax takes under SOFTMAX_SHARE of the forward FLOPs (the character models;
  small 76%, medium 49%): the step is the recurrence's chain of small matmuls, which ROW_GROUPS
  chains outside XLA run faster than XLA in float32 on a CPU (PERFORMANCE.md)."""
  return 2 * config.hidden_size * config.vocab_size < SOFTMAX_SHARE * forward_flops_per_token(
      config)


def plan(config, precision, jit_compile):
  """How `config` runs here in `precision` with XLA on or off (`common.devices.plan`): the
  LSTM, cuDNN, the row groups, the cell op, the threads per op."""
  return devices.plan(devices.visible(), config.lstm, config.cell, jit_compile, precision,
                      row_groups=config.row_groups, cell_op=config.cell_op,
                      cpu_row_groups=ROW_GROUPS)


def intra_op_threads(config):
  """The threads per op for a resolved `config` (0: TensorFlow's default, one per core): 1
  where the LSTM runs its rows in chains, which are the parallelism (mnist_rnn/model.py)."""
  return plan(config, config.precision, config.jit_compile).intra_op_threads


def forward_flops_per_token(config):
  """Matmul FLOPs of one token's forward pass (2 per multiply-add; elementwise ops left out).

  Per layer the input projection and the recurrent matmul, each [hidden] x [hidden, gates *
  hidden] (4 gate blocks for an LSTM, 3 for a GRU, 1 for a plain RNN); then the softmax
  [hidden] x [hidden, vocab]. The backward pass costs twice the forward.
  """
  hidden, gates = config.hidden_size, {"lstm": 4, "gru": 3, "rnn": 1}[config.cell]
  recurrent = config.num_layers * 2 * (2 * hidden * gates * hidden)
  return recurrent + 2 * hidden * config.vocab_size


def resolve_precision(name, jit_compile, hardware=None):
  """The --precision to train with: 'auto' is bfloat16_matmuls on a CPU fast at bfloat16 with
  XLA, else float32 (on a GPU TensorFlow runs it as TF32; common.devices.auto_precision).

  bfloat16_matmuls is the fastest numerically safe mode on such a CPU (the perplexity of
  float32, README); the whole model in bfloat16 (mixed_bfloat16) is faster still but loses
  perplexity. Never float16: it needs loss scaling, which plain SGD does not do.
  `hardware`: a `common.devices.Hardware` (default: this machine's).
  """
  if name == "mixed_float16":
    raise UserError("--precision=mixed_float16 needs loss scaling, which ptb's plain SGD does "
                    "not do: use float32, bfloat16_matmuls or mixed_bfloat16")
  if name == BFLOAT16_MATMULS and not jit_compile:
    raise UserError(f"--precision={BFLOAT16_MATMULS} needs --jit_compile: only XLA multiplies "
                    "bfloat16 inputs into float32 results; use --precision=float32 without it")
  if name == "auto":
    return devices.auto_precision(hardware or devices.visible(),
                                  BFLOAT16_MATMULS if jit_compile else None)[0]
  return name
