"""Trains the PTB language model from the command line: flags in, `ptb.train` does the rest.

Usage: python -m ptb.main --model=small --data_dir=DIR --model_dir=DIR
       python -m ptb.main --helpfull   # every flag; each config field is one (--num_steps=35)
"""
import dataclasses

from absl import flags, logging

from common import distribute, errors, precision
from common.flags import (define_common_flags, no_positional_arguments, positive,
                          strategy_from_flags)
from ptb import configs, train
from ptb.model import BFLOAT16_MATMULS


def define_flags():
  """The command line: --model picks a config, a flag per config field overrides it."""
  define_common_flags("PTB_DATA_DIR", default_precision="auto", default_jit_compile=True,
                      precisions=precision.CHOICES + (BFLOAT16_MATMULS,),
                      auto_precision=f"{BFLOAT16_MATMULS} (with --jit_compile)")
  flags.DEFINE_alias("data_path", "data_dir")   # the tutorial's names
  flags.DEFINE_alias("save_path", "model_dir")
  flags.DEFINE_enum("model", "small", list(configs.CONFIGS), "Configuration (paper's rows).")
  flags.DEFINE_integer("checkpoint_every_steps", 500, "Also checkpoint every N training steps.")
  for field in dataclasses.fields(configs.SmallConfig):
    if field.type is bool:
      flags.DEFINE_bool(field.name, None, f"Override the config's {field.name}.")
      continue
    define = flags.DEFINE_integer if field.type is int else flags.DEFINE_float
    define(field.name, None, f"Override the config's {field.name}.")
    if field.name not in ("lr_decay",):
      positive(field.name)
  flags.register_validator("keep_prob", lambda v: v is None or 0 < v <= 1,
                           "--keep_prob must be in (0, 1]")
  flags.register_validator("lr_decay", lambda v: v is None or 0 < v <= 1,
                           "--lr_decay must be in (0, 1]")
  positive("checkpoint_every_steps")


def main(argv):
  no_positional_arguments(argv, "--model=small")
  flag = flags.FLAGS
  strategy = strategy_from_flags()  # first: multi-worker and logical devices need that
  config = configs.get_config(flag.model, **{name: flag[name].value for name in configs.FIELDS})
  options = train.RunOptions(data_dir=flag.data_dir, seed=flag.seed,
                             use_synthetic_data=flag.use_synthetic_data,
                             checkpoint_every_steps=flag.checkpoint_every_steps,
                             jit_compile=flag.jit_compile,
                             precision=train.resolve_precision(flag.precision, flag.jit_compile))
  logging.info("config %s: %s; precision %s", flag.model, config, options.precision)
  results = train.train_and_evaluate(config, flag.model_dir, options, strategy)
  logging.info("test perplexity %.3f in %.0f s%s", results["test_perplexity"],
               results["wall_seconds"], f"; wrote {flag.model_dir}/metrics.json"
               if distribute.is_chief(strategy) else " (the chief writes the results)")


if __name__ == "__main__":
  define_flags()
  errors.run(main)
