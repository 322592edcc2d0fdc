"""Trains the language model from the command line: flags in, `ptb.train` does the rest.

Usage: python -m ptb.main --model=small --data_dir=DIR --model_dir=DIR
       python -m ptb.main --model=char --text_file=input.txt --model_dir=DIR
       python -m ptb.main --helpfull   # every flag; each config field is one (--num_steps=35)
"""
from absl import flags

from common import distribute, errors, precision, storage
from common import flags as common_flags
from common.progress import log
from ptb import configs, train
from ptb.model import BFLOAT16_MATMULS, resolve_precision

FLAGS = flags.FLAGS


def define_flags():
  """The command line: --model picks a config, a flag per config field overrides it."""
  common_flags.define_common_flags(
      "PTB_DATA_DIR", default_precision="auto", default_jit_compile=True,
      precisions=precision.CHOICES + (BFLOAT16_MATMULS,),
      auto_precision=f"{BFLOAT16_MATMULS} (with --jit_compile)")
  flags.DEFINE_alias("data_path", "data_dir")   # the tutorial's names
  flags.DEFINE_alias("save_path", "model_dir")
  flags.DEFINE_string("text_file", "", "Train on this UTF-8 text file instead of --data_dir: "
                      "the first 90% trains, the next 5% validates, the last 5% tests.")
  flags.DEFINE_integer("checkpoint_every_steps", 500, "Also checkpoint every N training steps.")
  common_flags.define_config_flags(configs.SmallConfig, configs.CONFIGS, "small",
                                   configs.CHOICES)
  for name in configs.FIELDS:
    if name not in ("lr_decay", "learning_rate") and name not in configs.CHOICES:
      common_flags.positive(name)
  flags.register_validator("vocab_size", lambda v: v is None or v >= 2,
                           "--vocab_size must be at least 2 (a word and <unk>)")
  for name in ("keep_prob", "lr_decay"):
    flags.register_validator(name, lambda v: v is None or 0 < v <= 1,
                             f"--{name} must be in (0, 1]")
  common_flags.positive("learning_rate")
  common_flags.positive("checkpoint_every_steps")


def main(argv):
  common_flags.no_positional_arguments(argv, "--model=small")
  storage.check_model_dir(FLAGS.model_dir)
  strategy = common_flags.strategy_from_flags()  # first: multi-worker and logical devices
  config = common_flags.config_from_flags(configs.CONFIGS)
  options = train.RunOptions(data_dir=FLAGS.data_dir, text_file=FLAGS.text_file,
                             seed=FLAGS.seed, use_synthetic_data=FLAGS.use_synthetic_data,
                             checkpoint_every_steps=FLAGS.checkpoint_every_steps,
                             jit_compile=FLAGS.jit_compile,
                             precision=resolve_precision(FLAGS.precision, FLAGS.jit_compile))
  log("config %s: %s; precision %s", FLAGS.model, config, options.precision)
  results = train.train_and_evaluate(config, FLAGS.model_dir, options, strategy)
  log("test perplexity %.3f in %.0f s%s", results["test_perplexity"], results["wall_seconds"],
      f"; wrote {FLAGS.model_dir}/metrics.json" if distribute.is_chief(strategy)
      else " (the chief writes the results)")


if __name__ == "__main__":
  define_flags()
  errors.run(main)
