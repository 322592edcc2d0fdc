"""The LSTM layer of both apps: one set of weights, three ways to run it.

    gates = x_t W + h_{t-1} U + b        [batch, 4 * units], Keras' order: i, f, g, o
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(c_t)

`implementation`:
  reference  exactly these lines, one step at a time (`_step`), differentiated by TensorFlow:
             the one to read, and the yardstick every other path is tested against.
  fast       the same equations with the input projection outside the time loop and the
             backward pass written out, in row groups, with bfloat16 matmuls or the C++ cell
             op where they apply (`common.fast_lstm`, `common.cell_op`). The CPU default.
  keras      keras.layers.LSTM with the same initialisation (`KerasRecurrent`): the cuDNN
             kernel on a GPU outside XLA.
  auto       (the apps' default) keras on a GPU, fast on a CPU: `common.devices` decides.

Exports are traced on TensorFlow's standard ops whatever the training ran
(`standard_ops_only`): no cuDNN op, which has no CPU kernel, and no C++ cell op.
"""
import contextlib
import functools

import keras
import tensorflow as tf

from common import bfloat16, fast_lstm
from common import cell_op as cell_op_library

IMPLEMENTATIONS = ("reference", "fast", "keras")  # and "auto", decided by common.devices


class LSTM(keras.layers.Layer):
  """One LSTM layer in Keras' gate order (i, f, g, o) and weight layout.

  Args:
    units: hidden size.
    kernel_initializer, recurrent_initializer: for the input and recurrent weights.
    forget_bias: initial value of the forget gate's bias (the rest start at 0). ptb uses 0
      (the tutorial's BasicLSTMCell(forget_bias=0.0)); 1.0 is Keras' unit_forget_bias.
    implementation: "reference" or "fast" (the module docstring).
    bfloat16_matmuls: in training calls, the matmuls take bfloat16 inputs and return float32
      (`common.bfloat16`; only XLA can).
    row_groups, under_xla, cell_op: the fast path's options (`common.fast_lstm`): the batch's
      rows as this many independent chains; the layer runs inside XLA-compiled steps; each
      step's gate arithmetic as one C++ op (CPU only, not under XLA, not in an export).
  """

  def __init__(self, units, kernel_initializer, recurrent_initializer, forget_bias=0.0,
               implementation="fast", bfloat16_matmuls=False, row_groups=1, under_xla=False,
               cell_op=False, **kwargs):
    super().__init__(**kwargs)
    if implementation not in ("reference", "fast"):
      raise ValueError(f"LSTM implementation {implementation!r}: reference or fast")
    self.units = units
    self.implementation = implementation
    self.bfloat16_matmuls = bfloat16_matmuls
    self.row_groups = row_groups
    self.under_xla = under_xla
    self.cell_op = cell_op
    self.kernel_initializer = kernel_initializer
    self.recurrent_initializer = recurrent_initializer
    self.forget_bias = forget_bias
    self._convert_input_args = False  # keep the float32 state float32 under a mixed policy

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(input_shape[-1], 4 * self.units), name="kernel",
                                  initializer=self.kernel_initializer)
    self.recurrent_kernel = self.add_weight(shape=(self.units, 4 * self.units),
                                            name="recurrent_kernel",
                                            initializer=self.recurrent_initializer)
    self.bias = self.add_weight(shape=(4 * self.units,), name="bias", initializer=self._bias_init)

  def _bias_init(self, shape, dtype=None):
    units = self.units
    return tf.concat([tf.zeros([units]), tf.fill([units], float(self.forget_bias)),
                      tf.zeros([2 * units])], axis=0)

  def call(self, inputs, h=None, c=None, training=False):
    """inputs [batch, steps, in], h and c [batch, units] (default zeros) -> outputs
    [batch, steps, units], h, c.

    Under a mixed policy the matmuls run in the compute dtype (bfloat16) while the cell
    state c and the gate arithmetic stay float32.
    """
    if h is None:
      h = c = tf.zeros([tf.shape(inputs)[0], self.units])
    # Time-major before the matmul: transposing the small input is cheaper than transposing
    # the 4x wider result.
    inputs = tf.transpose(tf.cast(inputs, self.compute_dtype), [1, 0, 2])  # [T, B, in]
    bfloat16_matmuls = self.bfloat16_matmuls and training
    matmul = bfloat16.matmul if bfloat16_matmuls else _matmul
    weights = dict(kernel=tf.convert_to_tensor(self.kernel), bias=tf.cast(self.bias, tf.float32),
                   recurrent_kernel=tf.convert_to_tensor(self.recurrent_kernel))
    if inputs.shape[0] is None:  # any length (the exported scoring signature): a graph loop
      return _scanned(inputs, h, c, **weights)
    if self.implementation == "reference":
      return _unrolled(inputs, h, c, matmul=matmul, **weights)
    chain = functools.partial(fast_lstm.written_out, bfloat16_matmuls=bfloat16_matmuls,
                              fence=self.under_xla, ops=self._cell_op_library(), **weights)
    return fast_lstm.in_row_groups(inputs, h, c, chain, self.row_groups)

  def _cell_op_library(self):
    """`common.cell_op`'s library if this layer may use it outside XLA, else None."""
    if (not self.cell_op or self.under_xla or not fast_lstm.cell_op_allowed()
        or not cell_op_library.available(self.compute_dtype)):
      return None
    return cell_op_library.load()


def _matmul(h, kernel):
  return tf.matmul(tf.cast(h, kernel.dtype), kernel)


def _step(carry, projected_t, recurrent_kernel, matmul=_matmul):
  """One time step: gates [B, 4H] = x W + b (precomputed) + h U; c and h in float32."""
  h, c = carry
  gates = projected_t + tf.cast(matmul(h, recurrent_kernel), tf.float32)
  i, f, g, o = tf.split(gates, 4, axis=-1)
  c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
  h = tf.sigmoid(o) * tf.tanh(c)
  return h, c


def _unrolled(inputs, h, c, kernel, bias, recurrent_kernel, matmul=_matmul):
  """The reference: inputs [T, B, in] -> outputs [B, T, H], h, c, one `_step` at a time."""
  flat_inputs = tf.reshape(inputs, [-1, inputs.shape[-1]])  # [T * B, in]
  projected = tf.reshape(tf.cast(matmul(flat_inputs, kernel), tf.float32) + bias,
                         [inputs.shape[0], -1, kernel.shape[-1]])  # [T, B, 4H]
  outputs = []
  for projected_t in tf.unstack(projected):
    h, c = _step((h, c), projected_t, recurrent_kernel, matmul)
    outputs.append(h)
  return tf.stack(outputs, axis=1), h, c


def _scanned(inputs, h, c, kernel, bias, recurrent_kernel):
  """The reference's steps in a graph loop, for windows of any length."""
  projected = tf.cast(tf.einsum("tbi,ig->tbg", inputs, kernel), tf.float32) + bias
  step = functools.partial(_step, recurrent_kernel=recurrent_kernel)
  hs, cs = tf.scan(step, projected, initializer=(h, c))  # [T, B, H] each
  return tf.transpose(hs, [1, 0, 2]), hs[-1], cs[-1]


class KerasRecurrent(keras.layers.Layer):
  """A stock Keras recurrent layer called as `LSTM` is: (inputs, h, c) -> (outputs, h, c).

  keras.layers.LSTM (the cuDNN kernel on a GPU), GRU or SimpleRNN; the ones without a cell
  state pass `c` through unchanged, so every cell keeps the same [2, batch, units] state.
  """

  def __init__(self, layer, **kwargs):
    super().__init__(**kwargs)
    self.layer = layer
    self._convert_input_args = False

  def call(self, inputs, h=None, c=None, training=False):
    has_cell_state = isinstance(self.layer, keras.layers.LSTM)
    if h is None:
      initial = None
    else:
      initial = [h, c] if has_cell_state else [h]
    outputs, *states = self.layer(inputs, initial_state=initial, training=training)
    if has_cell_state:
      return outputs, states[0], states[1]
    return outputs, states[0], tf.zeros_like(states[0]) if c is None else c


def keras_layer(cell, units, kernel_initializer, recurrent_initializer, forget_bias=0.0,
                name=None, dtype=None, cudnn=False):
  """keras.layers.LSTM, GRU or SimpleRNN (`cell`), returning its sequence and state, wrapped
  in `KerasRecurrent`. The LSTM's forget bias must be 0 or 1 (Keras' unit_forget_bias).
  `cudnn`: the LSTM and GRU may take cuDNN's kernels (`common.devices.runs_cudnn`); else they
  run Keras' own loop of standard ops, which XLA can compile."""
  options = dict(return_sequences=True, return_state=True, kernel_initializer=kernel_initializer,
                 recurrent_initializer=recurrent_initializer, dtype=dtype, name=name)
  if cell == "lstm":
    if forget_bias not in (0.0, 1.0):
      raise ValueError(f"keras.layers.LSTM starts the forget bias at 0 or 1, not {forget_bias}")
    layer = keras.layers.LSTM(units, unit_forget_bias=bool(forget_bias), **options,
                              **use_cudnn(cudnn))
  elif cell == "gru":
    layer = keras.layers.GRU(units, **options, **use_cudnn(cudnn))
  else:
    layer = keras.layers.SimpleRNN(units, **options)
  return KerasRecurrent(layer, name=name, dtype=dtype)


def use_cudnn(cudnn):
  """keras.layers.LSTM's and GRU's argument: "auto" (cuDNN where Keras finds it applies) or
  False (never: Keras' own loop)."""
  return {"use_cudnn": "auto" if cudnn else False}


@contextlib.contextmanager
def standard_ops_only(*models):
  """Traces `models` (Keras layers or models) on TensorFlow's standard ops: Keras' LSTM and
  GRU layers inside run Keras' own loop, never cuDNN's kernels (which have no CPU kernel), and
  our LSTM never the C++ cell op. For SavedModels that serve on any machine."""
  # Keras' LSTM and GRU read `use_cudnn` when they are called, so a trace now takes the value.
  every = [layer for model in models
           for layer in model._flatten_layers()]  # pylint: disable=protected-access
  layers = [layer for layer in every if getattr(layer, "use_cudnn", False) is not False]
  saved = [layer.use_cudnn for layer in layers]
  for layer in layers:
    layer.use_cudnn = False
  try:
    with fast_lstm.tensorflow_ops_only():
      yield
  finally:
    for layer, value in zip(layers, saved):
      layer.use_cudnn = value
