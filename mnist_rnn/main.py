"""Trains the MNIST RNN from the command line: flags in, `mnist_rnn.train` does the rest.

Usage: python -m mnist_rnn.main --data_dir=DIR --model_dir=DIR   # the tutorial's model
       python -m mnist_rnn.main --num_layers=2 --bidirectional --precision=float32
       python -m mnist_rnn.main --helpfull   # every flag; each config field is one
"""
from absl import flags

from common import errors, storage
from common import flags as common_flags
from common import loop
from common.data_dir import resolve
from common.progress import log
from mnist_rnn import configs, train
from mnist_rnn.model import intra_op_threads

FLAGS = flags.FLAGS


def define_flags():
  """The command line: --model picks a config, a flag per config field overrides it."""
  common_flags.define_common_flags("MNIST_DATA_DIR", default_precision="auto")
  common_flags.define_intra_op_threads_flag()
  common_flags.define_run_flags(checkpoint_every_steps=0, log_every_steps=100)
  common_flags.define_config_flags(configs.TutorialConfig, configs.CONFIGS, "tutorial",
                                   configs.CHOICES)
  flags.DEFINE_alias("config", "model")
  flags.register_validator("lr_decay", lambda v: v is None or 0 < v <= 1,
                           "--lr_decay must be in (0, 1]")
  for name in ("epochs", "max_steps_per_epoch", "lr_decay_start", "row_groups"):
    common_flags.non_negative(name)
  for name in ("batch_size", "learning_rate", "hidden_size", "num_layers"):
    common_flags.positive(name)


def main(argv):
  common_flags.no_positional_arguments(argv, "--epochs=3")
  storage.check_model_dir(FLAGS.model_dir)
  config = common_flags.config_from_flags(configs.CONFIGS)
  options = loop.RunOptions(**{**common_flags.run_options_from_flags(),
                               "data_dir": resolve(FLAGS.data_dir, "MNIST_DATA_DIR", "mnist")})
  # Decided from the devices (common/devices.py) before anything runs: a setting that cannot
  # run here is refused now.
  decided = train.resolve(config, FLAGS.model_dir, options, quiet=True)
  # Both process-wide, before any TensorFlow op: 1 thread per op with row groups (model.py).
  threads = FLAGS.intra_op_threads or intra_op_threads(decided)
  common_flags.set_intra_op_threads(threads)
  strategy = common_flags.strategy_from_flags()  # multi-worker needs it before any op too
  log("ops run on %s", common_flags.describe_threads(threads))
  train.train_and_evaluate(config, FLAGS.model_dir, options, strategy)


if __name__ == "__main__":
  define_flags()
  errors.run(main)
