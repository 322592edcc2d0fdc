"""The recurrent classifier: 28 rows in, one at a time; the last hidden state picks the digit."""
import keras

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
  # Variables stay float32; under mixed_* the recurrent maths runs in bfloat16/float16.
  policy = keras.mixed_precision.DTypePolicy(config.precision)
  inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE), name="rows")  # [batch, 28 steps, 28]
  x = inputs
  for i in range(config.num_layers):
    last = i == config.num_layers - 1
    # Lower layers hand the whole sequence up; the top one returns only its last state.
    layer = RNN_LAYERS[config.cell](config.hidden_size, return_sequences=not last,
                                    dtype=policy, name=f"{config.cell}_{i}")
    if config.bidirectional:
      layer = keras.layers.Bidirectional(layer, dtype=policy, name=f"bidirectional_{i}")
    x = layer(x)  # [batch, hidden] or [batch, 28, hidden] (times 2 when bidirectional)
  # float32 logits even under mixed precision: softmax and the loss need the range.
  logits = keras.layers.Dense(NUM_CLASSES, dtype="float32", name="logits")(x)  # [batch, 10]
  return keras.Model(inputs, logits, name=f"mnist_{config.cell}")
