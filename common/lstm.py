"""An LSTM layer built for speed on CPU and GPU, shared by both apps."""
import contextlib
import functools
import threading

import keras
import tensorflow as tf

from common import bfloat16
from common import cell_op as cell_op_library


_local = threading.local()


@contextlib.contextmanager
def tensorflow_ops_only():
  """LSTM layers traced inside run on TensorFlow's ops alone, whatever their `cell_op`: for
  a SavedModel that loads where `common.cell_op`'s library is not built."""
  _local.tensorflow_ops_only = True
  try:
    yield
  finally:
    _local.tensorflow_ops_only = False


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
    under_xla: the layer is called inside XLA-compiled steps (`call`'s default; see
      `_written_out`).
    cell_op: each time step's gate arithmetic as one op each way, compiled for this CPU
      (`common.cell_op`; CPU only, not under XLA, not in an export); where it cannot be
      built, TensorFlow's ops.
  """

  def __init__(self, units, kernel_initializer, recurrent_initializer, forget_bias=0.0,
               row_groups=1, under_xla=False, cell_op=False, **kwargs):
    super().__init__(**kwargs)
    self.units = units
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

  def call(self, inputs, h=None, c=None, bfloat16_matmuls=False, under_xla=None):
    """inputs [batch, steps, in], h and c [batch, units] -> outputs [batch, steps, units], h, c.

    h and c default to zeros.

    Under a mixed policy the matmuls run in the compute dtype (bfloat16) while the cell
    state c and the gate arithmetic stay float32. With `bfloat16_matmuls` (XLA only) they
    take bfloat16 inputs and return float32 (`common.bfloat16`). `under_xla`: the caller
    compiles with XLA (see `_written_out`); None: the layer's `under_xla`.
    """
    if h is None:
      h = c = tf.zeros([tf.shape(inputs)[0], self.units])
    # Time-major before the matmul: transposing the small input is cheaper than transposing
    # the 4x wider result (mnist_rnn step 1.07x faster, measured).
    inputs = tf.transpose(tf.cast(inputs, self.compute_dtype), [1, 0, 2])  # [T, B, in]
    # Compute dtype (float32 under bfloat16_matmuls, which casts inside the matmuls).
    kernel = tf.convert_to_tensor(self.kernel)
    recurrent_kernel = tf.convert_to_tensor(self.recurrent_kernel)
    bias = tf.cast(self.bias, tf.float32)
    if inputs.shape[0] is not None:
      # Static window (training, evaluation): unrolled, 1.5x faster than a loop on CPU.
      under_xla = self.under_xla if under_xla is None else under_xla
      chain = functools.partial(_written_out, kernel=kernel, bias=bias,
                                recurrent_kernel=recurrent_kernel,
                                bfloat16_matmuls=bfloat16_matmuls, fence=under_xla,
                                ops=None if under_xla else self._cell_op_library())
      return _in_row_groups(inputs, h, c, chain, self.row_groups)
    # Any length (the exported scoring signature): a graph loop over time.
    projected = tf.cast(tf.einsum("tbi,ig->tbg", inputs, kernel), tf.float32) + bias
    step = functools.partial(_step, recurrent_kernel=recurrent_kernel)
    hs, cs = tf.scan(step, projected, initializer=(h, c))  # [T, B, H] each
    return tf.transpose(hs, [1, 0, 2]), hs[-1], cs[-1]

  def _cell_op_library(self):
    """`common.cell_op`'s library if this layer may use it outside XLA, else None."""
    if (not self.cell_op or getattr(_local, "tensorflow_ops_only", False)
        or not cell_op_library.available(self.compute_dtype)):
      return None
    return cell_op_library.load()


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


def _in_row_groups(inputs, h, c, chain, groups):
  """`chain` on `groups` slices of the batch's rows: outputs [B, T, H], final h, c.

  The rows are independent sequences, so each slice is a separate chain of small per-step
  ops. TensorFlow's executor runs ready ops of different chains on its inter-op threads at
  once, which keeps both cores of a small CPU busy; one chain waits on every small op in turn.
  Each row's numbers are the same either way. `inputs` are time-major, [T, B, in].
  """
  if groups == 1:
    return chain(inputs, h, c)
  batch = tf.shape(h)[0]
  sizes = tf.stack([batch // groups] * (groups - 1) + [batch - (groups - 1) * (batch // groups)])
  chains = [chain(input_rows, h_rows, c_rows)
            for input_rows, h_rows, c_rows in zip(tf.split(inputs, sizes, axis=1),
                                                  tf.split(h, sizes), tf.split(c, sizes))]
  outputs, h, c = zip(*chains)
  return tf.concat(outputs, 0), tf.concat(h, 0), tf.concat(c, 0)


def _written_out(inputs, h, c, kernel, bias, recurrent_kernel, bfloat16_matmuls, fence,
                 ops=None):
  """The unrolled LSTM, inputs [T, B, in] -> outputs [B, T, H], final h, c, with its backward
  pass written out: the same numbers as differentiating `_step` (up to float32 summation
  order), from fewer and larger ops.

  The matmuls run in the kernels' dtype and their results are cast to float32; with
  `bfloat16_matmuls` (XLA only) they take bfloat16-rounded inputs and return float32, as
  `common.bfloat16.matmul` does. What the written-out pass does better, measured
  (WORKSPACE.md):

  - The kernels' gradients are one [in or H, T*B] x [T*B, 4H] matmul each, after the loop,
    not T small ones summed (in bfloat16 under a mixed policy), and the bias's gradient is
    one sum of the T gate gradients, not a reduction over [T, B, 4H]; the input projection
    is inside the pass, so nothing of its size is concatenated or split for the row groups.
    mnist_rnn's default step: 1.27-1.36x faster (10.03-10.59 against 13.47-13.63 ms).
  - `fence` (under XLA): the cell-state gradient passes through a matmul by the identity at
    every step (exact). XLA otherwise fuses the elementwise chain dc_t -> dc_t-1 -> ... into
    every step's fusion, recomputing all later steps in each (fusions of 35-60 us instead
    of 3-5 us); a matmul is where fusion stops (an optimization_barrier is gone before
    fusion runs). ptb's default step: 1.07x faster (30.70 against 32.74 ms).
  - `ops` (the loaded `common.cell_op` library, or None): each step's gate arithmetic is one
    op each way instead of 13 forward and 16 back, compiled for this CPU; the bias gradient
    is summed inside them. mnist_rnn's default step: 1.2x faster (8.1-9.0 against 10.2-10.3 ms).
  """
  steps, units = inputs.shape[0], recurrent_kernel.shape[0]
  dtype = tf.bfloat16 if bfloat16_matmuls else recurrent_kernel.dtype  # of the matmuls' inputs

  def product(a, b, transpose_b=False):  # float32 [m, n]
    if bfloat16_matmuls:
      return tf.linalg.matmul(a, b, transpose_b=transpose_b, output_type=tf.float32)
    return tf.cast(tf.matmul(a, b, transpose_b=transpose_b), tf.float32)

  def weight_gradient(a, b):  # a [rows, n], b [rows, m] -> a^T b [n, m], the weight's dtype
    if bfloat16_matmuls:  # float32
      return tf.reshape(product(bfloat16.transposed(a), b), [a.shape[-1], b.shape[-1]])
    return tf.matmul(a, b, transpose_a=True)

  @tf.custom_gradient
  def chain(inputs, h, c, kernel, bias, recurrent_kernel):
    flat_inputs = tf.cast(tf.reshape(inputs, [-1, inputs.shape[-1]]), dtype)  # [T * B, in]
    kernel, recurrent_kernel = tf.cast(kernel, dtype), tf.cast(recurrent_kernel, dtype)
    projected = tf.unstack(  # T x [B, 4H]
        tf.reshape(product(flat_inputs, kernel) + bias, [steps, -1, 4 * units]))
    h_matmul, matmul_inputs, saved, outputs = tf.cast(h, dtype), [], [], []
    for t in range(steps):
      matmul_inputs.append(h_matmul)
      if ops:
        c_prev = c
        h, h_matmul, c, activations, tanh_c = ops.lstm_cell_forward(
            projected[t], tf.matmul(h_matmul, recurrent_kernel), c)
        saved.append((activations, c_prev, tanh_c))
      else:
        h, c, saved_t = _cell_forward(projected[t] + product(h_matmul, recurrent_kernel), c)
        h_matmul = tf.cast(h, dtype)
        saved.append(saved_t)
      outputs.append(h)

    def gradient(d_outputs, dh, dc):  # [B, T, H], [B, H], [B, H]
      d_gates, d_matmul_gates = [None] * steps, [None] * steps  # float32, dtype
      if ops:
        d_outputs = tf.unstack(d_outputs, axis=1)  # T x [B, H]
        d_outputs[-1] += dh
        dh, d_bias = tf.zeros_like(h_matmul), tf.zeros([4 * units])  # dh in the matmul dtype
      for t in reversed(range(steps)):
        if ops:
          d_matmul_gates[t], dc, d_bias = ops.lstm_cell_backward(*saved[t], dh, d_outputs[t],
                                                                 dc, d_bias)
          dh = tf.matmul(d_matmul_gates[t], recurrent_kernel, transpose_b=True)
          continue
        d_gates[t], dc = _cell_backward(saved[t], dh + d_outputs[:, t], dc, fence)
        d_matmul_gates[t] = tf.cast(d_gates[t], dtype)
        dh = product(d_matmul_gates[t], recurrent_kernel, transpose_b=True)
      if ops:
        dh = tf.cast(dh, tf.float32)
      else:
        d_bias = tf.reduce_sum(tf.add_n(d_gates), 0)
      d_flat = tf.reshape(tf.stack(d_matmul_gates), [-1, 4 * units])  # [T * B, 4H]
      d_inputs = tf.reshape(product(d_flat, kernel, transpose_b=True), tf.shape(inputs))
      d_recurrent_kernel = weight_gradient(
          tf.reshape(tf.stack(matmul_inputs), [-1, units]), d_flat)
      return (tf.cast(d_inputs, inputs.dtype), dh, dc, weight_gradient(flat_inputs, d_flat),
              d_bias, d_recurrent_kernel)

    return (tf.stack(outputs, axis=1), h, c), gradient

  return chain(inputs, h, c, kernel, bias, recurrent_kernel)


def _cell_forward(gates, c_prev):
  """The gate arithmetic of one step in TensorFlow's ops: gates [B, 4H] (float32, the bias
  and both matmuls added) and c_prev [B, H] -> h, c and what `_cell_backward` needs."""
  i, f, g, o = tf.split(gates, 4, axis=-1)
  i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
  c = f * c_prev + i * g
  tanh_c = tf.tanh(c)
  return o * tanh_c, c, (i, f, g, o, c_prev, tanh_c)


def _cell_backward(saved, dh, dc, fence):
  """`_cell_forward`'s gradient: dh, dc [B, H] -> the gates' gradient [B, 4H], dc_prev.

  `fence`: dc_prev leaves through a matmul by the identity, where XLA's fusion stops (see
  `_written_out`)."""
  i, f, g, o, c_prev, tanh_c = saved
  dc = dc + tf.raw_ops.TanhGrad(y=tanh_c, dy=dh * o)
  d_gates = tf.concat([tf.raw_ops.SigmoidGrad(y=i, dy=dc * g),
                       tf.raw_ops.SigmoidGrad(y=f, dy=dc * c_prev),
                       tf.raw_ops.TanhGrad(y=g, dy=dc * i),
                       tf.raw_ops.SigmoidGrad(y=o, dy=dh * tanh_c)], axis=-1)
  dc_prev = dc * f
  if fence:
    dc_prev = tf.linalg.matmul(dc_prev, tf.eye(dc_prev.shape[-1]))
  return d_gates, dc_prev
