"""Trains the MNIST RNN from the command line: flags in, `mnist_rnn.train` does the rest.

Usage: python -m mnist_rnn.main --data_dir=DIR --model_dir=DIR   # the tutorial's model
       python -m mnist_rnn.main --num_layers=2 --bidirectional --precision=float32  # 99.15%
       python -m mnist_rnn.main --helpfull   # every flag; each Config field is one
"""
import dataclasses

from absl import flags

from common import errors
from common import flags as common_flags
from common.data_dir import resolve
from common.progress import log
from mnist_rnn import configs
from mnist_rnn.model import intra_op_threads
from mnist_rnn.train import train_and_evaluate

FLAGS = flags.FLAGS


def define_flags():
  """The command line: each Config field is a flag of the same name, overriding --config."""
  common_flags.define_common_flags("MNIST_DATA_DIR", default_precision="auto")
  common_flags.define_intra_op_threads_flag()
  default = configs.TutorialConfig
  flags.DEFINE_enum("config", "tutorial", list(configs.CONFIGS), "Starting configuration; "
                    "the flags below override its fields (their defaults are the tutorial's).")
  flags.DEFINE_integer("epochs", default.epochs, "Passes over the 60,000 training images.")
  flags.DEFINE_integer("batch_size", default.batch_size, "Images per training step.")
  flags.DEFINE_float("learning_rate", default.learning_rate, "Adam's learning rate.")
  flags.DEFINE_float("lr_decay", default.lr_decay, "Learning-rate factor per epoch after "
                     "--lr_decay_start (1: the tutorial's constant rate).")
  flags.DEFINE_integer("lr_decay_start", default.lr_decay_start,
                       "Epochs at the full learning rate before the decay starts.")
  flags.DEFINE_integer("hidden_size", default.hidden_size, "Units per recurrent layer.")
  flags.DEFINE_integer("num_layers", default.num_layers, "Stacked recurrent layers.")
  flags.DEFINE_enum("cell", default.cell, list(configs.CELLS), "Recurrent cell.")
  flags.DEFINE_bool("bidirectional", default.bidirectional, "Read the rows both ways.")
  flags.DEFINE_bool("fused_lstm", default.fused_lstm, "LSTM cells: our layer with the input "
                    "projection outside the time loop, instead of keras.layers.LSTM.")
  flags.DEFINE_integer("row_groups", default.row_groups, "Fused LSTM: run the batch's rows as "
                       "this many independent chains, in parallel on a CPU (0: 2 on a CPU "
                       "without XLA, else 1).")
  flags.DEFINE_bool("cell_op", default.cell_op, "Fused LSTM on a CPU without XLA: each step's "
                    "gate arithmetic as one op, compiled for this CPU on first use "
                    "(common/cell_op.py).")
  flags.DEFINE_integer("max_steps_per_epoch", default.max_steps_per_epoch,
                       "Cut each epoch after this many steps (0: the whole training set).")
  flags.DEFINE_integer("log_every_steps", default.log_every_steps, "Steps between log lines.")
  flags.DEFINE_integer("checkpoint_every_steps", default.checkpoint_every_steps,
                       "Also checkpoint every N steps within an epoch (0: at epoch ends only).")
  flags.register_validator("lr_decay", lambda v: 0 < v <= 1, "--lr_decay must be in (0, 1]")
  for name in ("epochs", "max_steps_per_epoch", "lr_decay_start", "checkpoint_every_steps",
               "row_groups"):
    common_flags.non_negative(name)
  for name in ("batch_size", "learning_rate", "hidden_size", "num_layers", "log_every_steps"):
    common_flags.positive(name)


def config_from_flags():
  """--config's Config with every flag given on the command line replacing its field."""
  overrides = {field.name: FLAGS[field.name].value
               for field in dataclasses.fields(configs.Config) if FLAGS[field.name].present}
  return dataclasses.replace(configs.CONFIGS[FLAGS.config], **overrides)


def main(argv):
  common_flags.no_positional_arguments(argv, "--epochs=3")
  config = config_from_flags()
  # Both process-wide, before any TensorFlow op: 1 thread per op with row groups (model.py).
  threads = FLAGS.intra_op_threads or intra_op_threads(config)
  common_flags.set_intra_op_threads(threads)
  strategy = common_flags.strategy_from_flags()  # multi-worker needs it before any op too
  log("ops run on %s", f"{threads} thread{'s' * (threads > 1)} each" if threads
      else "as many threads as TensorFlow gives them (one per core)")
  train_and_evaluate(config, FLAGS.model_dir, resolve(FLAGS.data_dir, "MNIST_DATA_DIR", "mnist"),
                     strategy)


if __name__ == "__main__":
  define_flags()
  errors.run(main)
