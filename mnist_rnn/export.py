"""The SavedModel of the MNIST RNN: serving_default(images uint8 [N, 28, 28]) ->
probabilities [N, 10], classes [N]. Loading it needs TensorFlow alone."""
import tensorflow as tf

from common import lstm, storage
from mnist_rnn import data


def export(model, export_dir):
  """Writes the SavedModel: serving_default(images uint8 [N, 28, 28]) -> probabilities, classes.

  Loading it needs TensorFlow alone; the scaling to [0, 1] is inside the signature.
  """
  module = tf.Module()
  module.model = model

  @tf.function(input_signature=[tf.TensorSpec([None, data.IMAGE_SIZE, data.IMAGE_SIZE],
                                              tf.uint8, name="images")])
  def serve(images):
    logits = model(data.preprocess(images), training=False)  # [N, 10] float32
    return {"probabilities": tf.nn.softmax(logits), "classes": tf.argmax(logits, axis=-1)}

  module.serve = serve
  # Every function saved (Keras traces the model's own as well) on TensorFlow's standard ops,
  # whatever the training ran: no cuDNN op (no CPU kernel) and no LSTM cell op (not built
  # everywhere), so that the export serves on any machine.
  with lstm.standard_ops_only(model):
    return storage.save_model(module, export_dir, signatures={"serving_default": serve})
