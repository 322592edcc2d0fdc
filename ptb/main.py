"""Trains the language model from the command line: flags in, `ptb.train` does the rest.

Usage: python -m ptb.main --model=small --data_dir=DIR --model_dir=DIR
       python -m ptb.main --model=char --text_file=input.txt --model_dir=DIR
       python -m ptb.main --model=char --model_dir=DIR   # tiny Shakespeare
       python -m ptb.main --helpfull   # every flag; each config field is one (--num_steps=35)
"""
from absl import flags

from common import errors, precision, storage
from common import flags as common_flags
from common.progress import log
from ptb import configs, train
from ptb.model import BFLOAT16_MATMULS, intra_op_threads

FLAGS = flags.FLAGS


def define_flags():
  """The command line: --model picks a config, a flag per config field overrides it."""
  common_flags.define_common_flags(
      "PTB_DATA_DIR", default_precision="auto", default_jit_compile=True,
      precisions=precision.CHOICES + (BFLOAT16_MATMULS,),
      auto_precision=f"{BFLOAT16_MATMULS} (with --jit_compile)")
  flags.DEFINE_string("text_file", "", "Train on this UTF-8 text file instead of --data_dir: "
                      "the first 90% trains, the next 5% validates, the last 5% tests. A "
                      "character model given neither reads tiny Shakespeare ($SHAKESPEARE_FILE, "
                      "else downloaded once into ~/.cache/rnn_tutorials/shakespeare).")
  common_flags.define_intra_op_threads_flag()
  common_flags.define_run_flags(checkpoint_every_steps=500, log_every_steps=0)
  common_flags.define_config_flags(configs.SmallConfig, configs.CONFIGS, "small",
                                   configs.CHOICES)
  for alias, name in (("data_path", "data_dir"), ("save_path", "model_dir"),
                      *configs.ALIASES.items()):
    flags.DEFINE_alias(alias, name)  # the tutorial's names
  for name in configs.FIELDS:  # the counts and sizes
    if name not in ("lr_decay", "learning_rate", "seed", "jit_compile", "epochs", "row_groups",
                    "cell_op", *configs.CHOICES):
      common_flags.positive(name)
  common_flags.non_negative("row_groups")
  flags.register_validator("epochs", lambda v: v is None or v > 0,
                           "--epochs (the tutorial's --max_max_epoch) must be > 0")
  flags.register_validator("vocab_size", lambda v: v is None or v >= 2,
                           "--vocab_size must be at least 2 (a word and <unk>)")
  for name in ("keep_prob", "lr_decay"):
    flags.register_validator(name, lambda v: v is None or 0 < v <= 1,
                             f"--{name} must be in (0, 1]")
  common_flags.positive("learning_rate")


def main(argv):
  common_flags.no_positional_arguments(argv, "--model=small")
  storage.check_model_dir(FLAGS.model_dir)
  config = common_flags.config_from_flags(configs.CONFIGS)
  options = train.RunOptions(text_file=FLAGS.text_file, **common_flags.run_options_from_flags())
  # Decided from the devices (common/devices.py) before anything runs: a setting that cannot
  # run here is refused now. The threads, the strategy (multi-worker, logical devices) are
  # process-wide and must come before any TensorFlow op: 1 thread per op with row groups.
  threads = FLAGS.intra_op_threads or intra_op_threads(
      train.resolve(config, FLAGS.model_dir, options, quiet=True))
  common_flags.set_intra_op_threads(threads)
  strategy = common_flags.strategy_from_flags()
  log("config %s; ops run on %s", FLAGS.model, common_flags.describe_threads(threads))
  results = train.train_and_evaluate(config, FLAGS.model_dir, options, strategy)
  log("test perplexity %.3f in %.0f s", results["test_perplexity"], results["wall_seconds"])


if __name__ == "__main__":
  define_flags()
  errors.run(main)
