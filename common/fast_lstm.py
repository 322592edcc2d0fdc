"""The LSTM's fast path: the same equations as `common.lstm`'s reference, from fewer, larger ops.

`written_out` runs a static window with its backward pass written by hand; `in_row_groups`
runs a batch's rows as independent chains; `common.cell_op` (C++) does a step's gate arithmetic
in one op. What each buys, measured, is in PERFORMANCE.md; the tests hold each one to the
reference's numbers (tests/test_fast_paths.py).
"""
import contextlib
import threading

import tensorflow as tf

from common import bfloat16

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


def cell_op_allowed():
  return not getattr(_local, "tensorflow_ops_only", False)


def in_row_groups(inputs, h, c, chain, groups):
  """`chain` on `groups` slices of the batch's rows: outputs [B, T, H], final h, c.

  The rows are independent sequences, so each slice is a separate chain of small per-step
  ops. TensorFlow's executor runs ready ops of different chains on its inter-op threads at
  once, which keeps both cores of a small CPU busy; one chain waits on every small op in turn.
  Each row's numbers are the same either way. `inputs` are time-major, [T, B, in]; a batch
  known to have fewer rows than `groups` (a batch-1 evaluation) runs a chain per row.
  """
  if h.shape[0] is not None:
    groups = min(groups, h.shape[0])
  if groups == 1:
    return chain(inputs, h, c)
  batch = tf.shape(h)[0]
  sizes = tf.stack([batch // groups] * (groups - 1) + [batch - (groups - 1) * (batch // groups)])
  chains = [chain(input_rows, h_rows, c_rows)
            for input_rows, h_rows, c_rows in zip(tf.split(inputs, sizes, axis=1),
                                                  tf.split(h, sizes), tf.split(c, sizes))]
  outputs, h, c = zip(*chains)
  return tf.concat(outputs, 0), tf.concat(h, 0), tf.concat(c, 0)


def written_out(inputs, h, c, kernel, bias, recurrent_kernel, bfloat16_matmuls, fence,
                ops=None):
  """The unrolled LSTM, inputs [T, B, in] -> outputs [B, T, H], final h, c, with its backward
  pass written out: the numbers of differentiating the reference step (up to float32
  summation order), from fewer and larger ops.

  - The kernels' gradients are one [in or H, T*B] x [T*B, 4H] matmul each, after the loop,
    not T small ones summed; the bias's gradient is one sum of the T gate gradients.
  - The matmuls run in the kernels' dtype and their results are cast to float32; with
    `bfloat16_matmuls` (XLA only) they take bfloat16-rounded inputs and return float32, as
    `common.bfloat16.matmul` does.
  - `fence` (under XLA): the cell-state gradient passes through a matmul by the identity at
    every step (exact). XLA otherwise fuses the elementwise chain dc_t -> dc_t-1 -> ... into
    every step's fusion, recomputing all later steps in each; a matmul is where fusion stops
    (an optimization_barrier is gone before fusion runs).
  - `ops` (the loaded `common.cell_op` library, or None): each step's gate arithmetic is one
    op each way instead of 13 forward and 16 back; the bias gradient is summed inside them.
  """
  steps, units = inputs.shape[0], recurrent_kernel.shape[0]
  dtype = tf.bfloat16 if bfloat16_matmuls else recurrent_kernel.dtype  # of the matmuls' inputs
  product = _product(bfloat16_matmuls)

  @tf.custom_gradient
  def chain(inputs, h, c, kernel, bias, recurrent_kernel):
    flat_inputs = tf.cast(tf.reshape(inputs, [-1, inputs.shape[-1]]), dtype)  # [T * B, in]
    kernel, recurrent_kernel = tf.cast(kernel, dtype), tf.cast(recurrent_kernel, dtype)
    projected = tf.unstack(  # T x [B, 4H]
        tf.reshape(product(flat_inputs, kernel) + bias, [steps, -1, 4 * units]))
    h, c, h_matmul, matmul_inputs, saved, outputs = _forward(
        projected, h, c, recurrent_kernel, dtype, product, ops)

    def gradient(d_outputs, dh, dc):  # [B, T, H], [B, H], [B, H]
      d_matmul_gates, dh, dc, d_bias = _backward(saved, d_outputs, dh, dc, h_matmul,
                                                 recurrent_kernel, dtype, product, fence, ops)
      d_flat = tf.reshape(tf.stack(d_matmul_gates), [-1, 4 * units])  # [T * B, 4H]
      d_inputs = tf.reshape(product(d_flat, kernel, transpose_b=True), tf.shape(inputs))
      d_recurrent_kernel = _weight_gradient(
          tf.reshape(tf.stack(matmul_inputs), [-1, units]), d_flat, bfloat16_matmuls)
      return (tf.cast(d_inputs, inputs.dtype), dh, dc,
              _weight_gradient(flat_inputs, d_flat, bfloat16_matmuls), d_bias,
              d_recurrent_kernel)

    return (tf.stack(outputs, axis=1), h, c), gradient

  return chain(inputs, h, c, kernel, bias, recurrent_kernel)


def _product(bfloat16_matmuls):
  """a b (or a b^T) as float32 [m, n]: from bfloat16 inputs under `bfloat16_matmuls`."""

  def product(a, b, transpose_b=False):
    if bfloat16_matmuls:
      return tf.linalg.matmul(a, b, transpose_b=transpose_b, output_type=tf.float32)
    return tf.cast(tf.matmul(a, b, transpose_b=transpose_b), tf.float32)

  return product


def _weight_gradient(a, b, bfloat16_matmuls):
  """a [rows, n], b [rows, m] -> a^T b [n, m], in the weight's dtype (float32 in bfloat16)."""
  if bfloat16_matmuls:
    return tf.reshape(_product(True)(bfloat16.transposed(a), b), [a.shape[-1], b.shape[-1]])
  return tf.matmul(a, b, transpose_a=True)


def _forward(projected, h, c, recurrent_kernel, dtype, product, ops):
  """The loop over time steps; keeps what the backward pass needs."""
  h_matmul, matmul_inputs, saved, outputs = tf.cast(h, dtype), [], [], []
  for projected_t in projected:
    matmul_inputs.append(h_matmul)
    if ops:
      c_prev = c
      h, h_matmul, c, activations, tanh_c = ops.lstm_cell_forward(
          projected_t, tf.matmul(h_matmul, recurrent_kernel), c)
      saved.append((activations, c_prev, tanh_c))
    else:
      h, c, saved_t = _cell_forward(projected_t + product(h_matmul, recurrent_kernel), c)
      h_matmul = tf.cast(h, dtype)
      saved.append(saved_t)
    outputs.append(h)
  return h, c, h_matmul, matmul_inputs, saved, outputs


def _backward(saved, d_outputs, dh, dc, h_matmul, recurrent_kernel, dtype, product, fence,
              ops):
  """The loop back over time: the gates' gradients (matmul dtype), dh, dc and the bias's."""
  steps, units = len(saved), recurrent_kernel.shape[0]
  d_gates, d_matmul_gates = [None] * steps, [None] * steps  # float32, dtype
  if ops:
    d_outputs = tf.unstack(d_outputs, axis=1)  # T x [B, H]
    d_outputs[-1] += dh
    dh, d_bias = tf.zeros_like(h_matmul), tf.zeros([4 * units])  # dh in the matmul dtype
  for t in reversed(range(steps)):
    if ops:
      d_matmul_gates[t], dc, d_bias = ops.lstm_cell_backward(*saved[t], dh, d_outputs[t], dc,
                                                             d_bias)
      dh = tf.matmul(d_matmul_gates[t], recurrent_kernel, transpose_b=True)
      continue
    d_gates[t], dc = _cell_backward(saved[t], dh + d_outputs[:, t], dc, fence)
    d_matmul_gates[t] = tf.cast(d_gates[t], dtype)
    dh = product(d_matmul_gates[t], recurrent_kernel, transpose_b=True)
  if ops:
    return d_matmul_gates, tf.cast(dh, tf.float32), dc, d_bias
  return d_matmul_gates, dh, dc, tf.reduce_sum(tf.add_n(d_gates), 0)


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
  `written_out`)."""
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
