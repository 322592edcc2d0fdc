"""The recurrent classifier: 28 rows in, one at a time; the last hidden state picks the digit.

`config.lstm` picks how the LSTM runs (common/lstm.py: reference, fast, keras; auto: keras on
a GPU without XLA, else fast), the same model each way; `cell`, `num_layers` and
`bidirectional` generalise the tutorial's model. How it runs on this hardware is
`common.devices`' decision (`decisions`).
"""
import keras

from common import cell_op as cell_op_library
from common import devices, lstm
from mnist_rnn.data import IMAGE_SIZE, NUM_CLASSES

RNN_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "rnn": keras.layers.SimpleRNN}


def build_model(config):
  """Builds the classifier of the TensorFlow-Examples recurrent_network tutorial.

  The tutorial: BasicLSTMCell(128, forget_bias=1.0) over 28 steps, then a linear layer on the
  last output. Keras' LSTM matches it (`unit_forget_bias=True` adds the same 1.0 to the forget
  gate at the start). `num_layers`, `cell` and `bidirectional` generalise it.

  Args:
    config: a `configs.Config`.

  Returns:
    A built Keras model: float32 images [batch, 28, 28] in [0, 1] -> logits [batch, 10].
  """
  plan = decisions(config)
  policy = _policy(plan)
  # cuDNN's kernels where they apply (a GPU, outside XLA), else Keras' own loop.
  cudnn = lstm.use_cudnn(plan.cudnn) if config.cell in devices.CUDNN_CELLS else {}
  inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE), name="rows")  # [batch, 28 steps, 28]
  x = inputs
  for i in range(config.num_layers):
    last = i == config.num_layers - 1
    if config.cell == "lstm" and plan.lstm != "keras":
      x = _our_lstm(x, config, plan, policy, i, last)
      continue
    # Lower layers hand the whole sequence up; the top one returns only its last state.
    layer = RNN_LAYERS[config.cell](config.hidden_size, return_sequences=not last,
                                    dtype=policy, name=f"{config.cell}_{i}", **cudnn)
    if config.bidirectional:
      layer = keras.layers.Bidirectional(layer, dtype=policy, name=f"bidirectional_{i}")
    x = layer(x)  # [batch, hidden] or [batch, 28, hidden] (times 2 when bidirectional)
  # float32 logits even under mixed precision: softmax and the loss need the range.
  logits = keras.layers.Dense(NUM_CLASSES, dtype="float32", name="logits")(x)  # [batch, 10]
  return keras.Model(inputs, logits, name=f"mnist_{config.cell}")


def decisions(config, hardware=None):
  """How `config` runs on `hardware` (default: this machine's), its XLA setting as it is:
  the LSTM (auto resolved), cuDNN, the precision, row groups, the cell op, the threads
  (`common.devices.plan`)."""
  return devices.plan(hardware or devices.visible(), config.lstm, config.cell,
                      config.jit_compile, config.precision, "mixed_bfloat16",
                      config.row_groups, config.cell_op)


def row_groups(config):
  """How many independent chains of rows the fast LSTM runs (`config.row_groups`, or 0:
  common.devices' default here); 0 for the other layers, which have no groups."""
  return decisions(config).row_groups


def _policy(plan):
  # Variables stay float32; under mixed_* the recurrent maths runs in bfloat16/float16.
  return keras.mixed_precision.DTypePolicy(plan.precision)


def uses_cell_op(config):
  """Whether our LSTM layers run `common.cell_op`'s op: `config.cell_op`, on a CPU without
  XLA (`common.devices`), and the op builds here (`cell_op.available`; it warns once where
  it cannot be built)."""
  plan = decisions(config)
  return plan.cell_op and cell_op_library.available(_policy(plan).compute_dtype)


def intra_op_threads(config):
  """The threads per op that train `config` fastest here (0: TensorFlow's default).

  1 where our LSTM runs its rows in groups: the groups keep the cores busy with ops of their
  own, and an op that splits its work across threads only waits for them (and leaves them
  spinning). Measured on the 2-core CPU, the default train step 9.5-10.0 ms against
  11.4-11.9 ms with TensorFlow's default of one thread per core; the plain `model.fit`
  baseline 17.3-17.4 against 17.7-18.0 ms, no slower.
  """
  return decisions(config).intra_op_threads


def _our_lstm(x, config, plan, policy, index, last):
  """common.lstm.LSTM in place of keras.layers.LSTM: the same maths and initialisation
  (Glorot kernel, orthogonal recurrent kernel, forget bias 1: Keras' and the tutorial's)."""

  def layer(name):
    return lstm.LSTM(config.hidden_size, keras.initializers.GlorotUniform(),
                     keras.initializers.Orthogonal(), forget_bias=1.0,
                     implementation=plan.lstm, row_groups=max(plan.row_groups, 1),
                     under_xla=config.jit_compile, cell_op=uses_cell_op(config), dtype=policy,
                     name=name)

  outputs, h, _ = layer(f"lstm_{index}")(x)  # [batch, 28, hidden], [batch, hidden]
  if not config.bidirectional:
    return h if last else outputs
  reverse = keras.layers.Lambda(lambda t: t[:, ::-1], name=f"reverse_{index}")
  backward_outputs, backward_h, _ = layer(f"lstm_{index}_backward")(reverse(x))
  if last:
    return keras.layers.Concatenate(name=f"concat_{index}")([h, backward_h])
  return keras.layers.Concatenate(name=f"concat_{index}")([outputs, reverse(backward_outputs)])


def forward_flops_per_example(config):
  """Matmul FLOPs of one image's forward pass (2 per multiply-add; elementwise left out).

  Each layer and direction: 28 steps of [input] x [input, 4 gates x hidden] and
  [hidden] x [hidden, 4 x hidden] (a GRU has 3 gate blocks, a plain RNN 1); then the dense
  layer. The backward pass costs twice the forward.
  """
  gates = {"lstm": 4, "gru": 3, "rnn": 1}[config.cell]
  directions = 2 if config.bidirectional else 1
  flops, width = 0, IMAGE_SIZE
  for _ in range(config.num_layers):
    per_step = 2 * width * gates * config.hidden_size + 2 * config.hidden_size ** 2 * gates
    flops += directions * IMAGE_SIZE * per_step
    width = directions * config.hidden_size
  return flops + 2 * width * NUM_CLASSES
