"""An LSTM layer built for speed on CPU and GPU, shared by both apps."""
import functools

import keras
import tensorflow as tf

from common import bfloat16


class LSTM(keras.layers.Layer):
  """One LSTM layer in Keras' gate order (i, f, c, o) and weight layout.

  The input projection of all time steps is one large matmul before the sequential loop;
  only the recurrent matmul and the gate arithmetic run step by step.

  Args:
    units: hidden size.
    kernel_initializer, recurrent_initializer: for the input and recurrent weights.
    forget_bias: initial value of the forget gate's bias (the rest start at 0). ptb uses 0
      (the tutorial's BasicLSTMCell(forget_bias=0.0)); 1.0 is Keras' unit_forget_bias.
    row_groups: run the batch's rows as this many independent chains of steps (see
      `_in_row_groups`); 1 runs them as one.
  """

  def __init__(self, units, kernel_initializer, recurrent_initializer, forget_bias=0.0,
               row_groups=1, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.row_groups = row_groups
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

  def call(self, inputs, h=None, c=None, bfloat16_matmuls=False, under_xla=False):
    """inputs [batch, steps, in], h and c [batch, units] -> outputs [batch, steps, units], h, c.

    h and c default to zeros.

    Under a mixed policy the matmuls run in the compute dtype (bfloat16) while the cell
    state c and the gate arithmetic stay float32. With `bfloat16_matmuls` (XLA only) they
    take bfloat16 inputs and return float32 (`common.bfloat16.matmul`). With either that or
    `under_xla` (the caller compiles with XLA) and float32 compute, a static window's
    backward pass is the written-out one of `_written_out_unrolled`, faster under XLA.
    """
    if h is None:
      h = c = tf.zeros([tf.shape(inputs)[0], self.units])
    # Time-major before the matmul: transposing the small input is cheaper than transposing
    # the 4x wider result (mnist_rnn step 1.07x faster, measured).
    inputs = tf.transpose(tf.cast(inputs, self.compute_dtype), [1, 0, 2])  # [T, B, in]
    if bfloat16_matmuls:
      matmul = bfloat16.matmul
      projected = tf.reshape(matmul(tf.reshape(inputs, [-1, inputs.shape[-1]]), self.kernel),
                             tf.concat([tf.shape(inputs)[:2], [4 * self.units]], 0))
    else:
      matmul = _matmul
      projected = tf.einsum("tbi,ig->tbg", inputs, self.kernel)
    projected = tf.cast(projected, tf.float32) + tf.cast(self.bias, tf.float32)  # [T, B, 4H]
    recurrent_kernel = tf.convert_to_tensor(self.recurrent_kernel)  # compute dtype
    step = functools.partial(_step, recurrent_kernel=recurrent_kernel, matmul=matmul)
    if projected.shape[0] is not None:
      # Static window (training, evaluation): unrolled, 1.5x faster than a loop on CPU.
      if bfloat16_matmuls or (under_xla and self.compute_dtype == "float32"):
        chain = functools.partial(_written_out_unrolled, recurrent_kernel=recurrent_kernel,
                                  matmul_dtype=tf.bfloat16 if bfloat16_matmuls else tf.float32)
      else:
        chain = functools.partial(_unrolled, step=step)
      return _in_row_groups(projected, h, c, chain, self.row_groups)
    # Any length (the exported scoring signature): a graph loop over time.
    hs, cs = tf.scan(step, projected, initializer=(h, c))
    return tf.transpose(hs, [1, 0, 2]), hs[-1], cs[-1]


def _matmul(h, kernel):
  return tf.matmul(tf.cast(h, kernel.dtype), kernel)


def _step(carry, projected_t, recurrent_kernel, matmul=_matmul):
  """One time step: gates [B, 4H] = x W + b (precomputed) + h U; c and h in float32."""
  h, c = carry
  recurrent = matmul(h, recurrent_kernel)
  gates = projected_t + tf.cast(recurrent, tf.float32)
  i, f, g, o = tf.split(gates, 4, axis=-1)
  c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
  h = tf.sigmoid(o) * tf.tanh(c)
  return h, c


def default_row_groups(jit_compile=False):
  """What `LSTM(row_groups=...)` should be here: 2 on a CPU, else 1.

  Measured on our 2-core CPU (mnist_rnn, batch 128, bfloat16): 2 groups make the train step
  1.12-1.27x faster than 1 (seven runs), 4 groups 1.03x. Under XLA (`jit_compile`) the groups
  only lengthen the compile (58 s against 15 s, mnist_rnn's test config). Not measured on a
  GPU, where a step is a few kernels whatever the batch, so we keep 1 there.
  """
  return 1 if jit_compile or tf.config.list_physical_devices("GPU") else 2


def _in_row_groups(projected, h, c, chain, groups):
  """`chain` on `groups` slices of the batch's rows: outputs [B, T, H], final h, c.

  The rows are independent sequences, so each slice is a separate chain of small per-step
  ops. TensorFlow's executor runs ready ops of different chains on its inter-op threads at
  once, which keeps both cores of a small CPU busy; one chain waits on every small op in turn.
  Each row's numbers are the same either way.
  """
  if groups == 1:
    return chain(projected, h, c)
  batch = tf.shape(h)[0]
  sizes = tf.stack([batch // groups] * (groups - 1) + [batch - (groups - 1) * (batch // groups)])
  chains = [chain(projected_rows, h_rows, c_rows)
            for projected_rows, h_rows, c_rows in zip(tf.split(projected, sizes, axis=1),
                                                      tf.split(h, sizes), tf.split(c, sizes))]
  outputs, h, c = zip(*chains)
  return tf.concat(outputs, 0), tf.concat(h, 0), tf.concat(c, 0)


def _unrolled(projected, h, c, step):
  """The time loop unrolled: projected [T, B, 4H] -> outputs [B, T, H], final h, c."""
  outputs = []
  for projected_t in tf.unstack(projected):
    h, c = step((h, c), projected_t)
    outputs.append(h)
  return tf.stack(outputs, axis=1), h, c


def _written_out_unrolled(projected, h, c, recurrent_kernel, matmul_dtype):
  """`_unrolled` for float32 compute under XLA, with its backward pass written out: the same
  numbers as differentiating `_step`. The matmuls take `matmul_dtype` inputs (bfloat16 for
  `bfloat16_matmuls`: `common.bfloat16.matmul`'s roundings) and return float32.

  Faster under XLA, measured on the ptb small step (WORKSPACE.md): 1.07x with bfloat16_matmuls
  (30.70 against 32.74 ms), 1.05x in float32 (43.62 against 45.62 ms). Two things do it:

  - The recurrent kernel's gradient is one [H, T*B] x [T*B, 4H] matmul after the loop, not T
    small ones beside it, which took a core from each step's input-gradient matmul.
  - The cell-state gradient passes through a matmul by the identity at every step (exact).
    XLA otherwise fuses the elementwise chain dc_t -> dc_t-1 -> ... into every step's
    fusion, recomputing all later steps in each (fusions of 35-60 us instead of 3-5 us);
    a matmul is where fusion stops (an optimization_barrier is gone before fusion runs).
  """
  steps = projected.shape[0]

  def product(a, b, transpose_b=False):  # float32 [m, n]
    return tf.linalg.matmul(a, b, transpose_b=transpose_b, output_type=tf.float32)

  @tf.custom_gradient
  def chain(projected, h, c, recurrent_kernel):
    kernel = tf.cast(recurrent_kernel, matmul_dtype)  # [H, 4H]
    matmul_inputs, saved, outputs = [], [], []
    for t in range(steps):
      matmul_inputs.append(tf.cast(h, matmul_dtype))
      gates = projected[t] + product(matmul_inputs[-1], kernel)
      i, f, g, o = tf.split(gates, 4, axis=-1)
      i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
      c_prev, c = c, f * c + i * g
      tanh_c = tf.tanh(c)
      h = o * tanh_c
      saved.append((i, f, g, o, c_prev, tanh_c))
      outputs.append(h)

    def gradient(d_outputs, dh, dc):  # [B, T, H], [B, H], [B, H]
      d_gates = [None] * steps
      identity = tf.eye(c.shape[-1])
      for t in reversed(range(steps)):
        i, f, g, o, c_prev, tanh_c = saved[t]
        dh = dh + d_outputs[:, t]
        dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
        d_gates[t] = tf.concat([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                                dc * i * (1.0 - g * g), dh * tanh_c * o * (1.0 - o)], axis=-1)
        dc = tf.linalg.matmul(dc * f, identity)  # where XLA's fusion stops (see above)
        dh = product(tf.cast(d_gates[t], matmul_dtype), kernel, transpose_b=True)
      d_gates = tf.stack(d_gates)  # [T, B, 4H]
      inputs = tf.reshape(tf.stack(matmul_inputs), [-1, kernel.shape[0]])  # [T * B, H]
      d_gates_in = tf.reshape(tf.cast(d_gates, matmul_dtype), [-1, kernel.shape[1]])
      if matmul_dtype == tf.bfloat16:
        d_kernel = product(bfloat16.transposed(inputs), d_gates_in)  # [1, H, 4H]
      else:
        d_kernel = tf.linalg.matmul(inputs, d_gates_in, transpose_a=True)
      return d_gates, dh, dc, tf.reshape(d_kernel, tf.shape(recurrent_kernel))

    return (tf.stack(outputs, axis=1), h, c), gradient

  return chain(projected, h, c, recurrent_kernel)
