"""Classifies image files with a trained export: python -m mnist_rnn.predict --model_dir=DIR A.png

Needs only MODEL_DIR/export (the SavedModel), not the checkpoints or this project's model code.
Prints one line per file: the digit, its probability and the file.
"""
import tensorflow as tf
from absl import flags

from common import errors, storage
from mnist_rnn import data

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", "/tmp/model", "Directory the model was trained in; its "
                      "export/ subdirectory holds the SavedModel.")
  flags.DEFINE_bool("invert", False, "The images are dark digits on a light background (ink on "
                    "paper); MNIST's are light on dark.")


def main(argv):
  paths = argv[1:]
  if not paths:
    raise errors.UserError("no images given: python -m mnist_rnn.predict --model_dir=DIR "
                           "IMAGE.png ...")
  images = tf.stack([data.read_image(path, FLAGS.invert) for path in paths])  # [N, 28, 28] uint8
  serve = storage.load_export(FLAGS.model_dir).signatures["serving_default"]
  outputs = serve(images=images)
  for path, digit, probabilities in zip(paths, outputs["classes"].numpy(),
                                        outputs["probabilities"].numpy()):
    print(f"digit {digit}  probability {probabilities[digit]:.4f}  {path}")


if __name__ == "__main__":
  define_flags()
  errors.run(main)
