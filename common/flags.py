"""absl flags both apps define the same way. Only entry modules call these."""
import dataclasses

import tensorflow as tf
from absl import flags

from common import distribute, errors, precision

# Config fields (what a run computes, common/loop.py) that define_common_flags defines, with
# the same meaning in every app.
COMMON_CONFIG_FIELDS = ("seed", "jit_compile", "precision")


def define_common_flags(data_env_var, default_precision="float32", default_jit_compile=False,
                        precisions=precision.CHOICES, auto_precision="mixed_bfloat16"):
  """The flags of both train commands; `precisions` and `auto_precision` are the app's own."""
  flags.DEFINE_string("data_dir", "", f"Dataset directory (default: ${data_env_var}, then "
                      "~/.cache/rnn_tutorials/<dataset>, downloading there if needed).")
  flags.DEFINE_string("model_dir", "/tmp/model", "Checkpoints, TensorBoard logs, metrics.json "
                      "and the SavedModel go here; rerun the same command to resume.")
  flags.DEFINE_integer("seed", 0, "Random seed for initialisation, shuffling and dropout.")
  flags.DEFINE_bool("use_synthetic_data", False, "Random data of the real shapes: measures "
                    "speed without the dataset.")
  flags.DEFINE_bool("jit_compile", default_jit_compile,
                    "Compile the train and eval steps with XLA.")
  flags.DEFINE_enum("precision", default_precision, list(precisions),
                    "Compute dtype; mixed_* keeps float32 master weights and float32 loss; auto "
                    f"is {auto_precision} on CPUs with fast bfloat16 (AVX-512 BF16 or AMX), "
                    "float32 elsewhere (on a GPU run as TF32: common/devices.py).")

  flags.DEFINE_enum("strategy", "auto", list(distribute.STRATEGIES),
                    "tf.distribute strategy: auto is multi_worker when $TF_CONFIG is set, "
                    "else mirrored when more than one device is in use, else one_device; "
                    "multi_worker reads the cluster from $TF_CONFIG.")
  flags.DEFINE_integer("num_gpus", None, "GPUs to use (default: all visible).")
  flags.DEFINE_integer("num_cpu_devices", 1, "Without GPUs: split the CPU into this many "
                       "logical devices, one mirrored replica each (to try tf.distribute).")
  non_negative("num_gpus")
  positive("num_cpu_devices")


def define_run_flags(checkpoint_every_steps, log_every_steps):
  """The flags of `common.loop.RunOptions` that change no number, with the app's defaults."""
  flags.DEFINE_integer("checkpoint_every_steps", checkpoint_every_steps,
                       "Also checkpoint every N training steps (0: at each epoch's end only).",
                       lower_bound=0)
  flags.DEFINE_integer("log_every_steps", log_every_steps, "A progress line every N training "
                       "steps (0: ten an epoch).", lower_bound=0)


def run_options_from_flags():
  """The keyword arguments of `common.loop.RunOptions` the flags give."""
  flag = flags.FLAGS
  return {"data_dir": flag.data_dir, "use_synthetic_data": flag.use_synthetic_data,
          "checkpoint_every_steps": flag.checkpoint_every_steps,
          "log_every_steps": flag.log_every_steps,
          "jit_compile_given": bool(flag["jit_compile"].present)}


def define_config_flags(config_class, configs, default, choices=None,
                        skip=COMMON_CONFIG_FIELDS):
  """`--model` (a name of `configs`) and one flag per field of `config_class`, named as the
  field, that overrides the chosen config's value; fields in `skip` are flags already.

  Args:
    config_class: the dataclass every config is (each config has every field).
    configs: name -> config class, for `--model`.
    default: the default name.
    choices: field -> allowed strings, for the str fields.
  """
  flags.DEFINE_enum("model", default, list(configs), "Configuration to start from; the flags "
                    "named after its fields override it (--helpfull lists them).")
  for field in dataclasses.fields(config_class):
    if field.name in skip:
      continue
    help_text = f"Override the config's {field.name}."
    if field.type is bool:
      flags.DEFINE_bool(field.name, None, help_text)
    elif field.type is str:
      flags.DEFINE_enum(field.name, None, list((choices or {})[field.name]), help_text)
    else:
      define = flags.DEFINE_integer if field.type is int else flags.DEFINE_float
      define(field.name, None, help_text)


def config_from_flags(configs, fields=None):
  """`--model`'s config with each config flag given on the command line replacing its field
  (`fields`: which fields are flags; default all of them)."""
  config = configs[flags.FLAGS.model]()
  names = fields or [field.name for field in dataclasses.fields(config)]
  overrides = {name: flags.FLAGS[name].value for name in names if flags.FLAGS[name].present}
  return dataclasses.replace(config, **overrides)


def define_intra_op_threads_flag():
  flags.DEFINE_integer("intra_op_threads", 0, "Threads one op may split its work across (0: "
                       "as the app picks for this configuration, see its model.py; TensorFlow's "
                       "own default is one per core).", lower_bound=0)


def set_intra_op_threads(threads):
  """Lets each op split its work across at most `threads` threads (0: TensorFlow's default,
  one per core). Call it first in main, before any TensorFlow op: it is process-wide."""
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)


def describe_threads(threads):
  """`set_intra_op_threads`' setting in words, for the log."""
  if threads:
    return f"{threads} thread{'s' * (threads > 1)} each"
  return "as many threads as TensorFlow gives them (one per core)"


def strategy_from_flags():
  """The strategy the flags ask for; call it first in main, before any TensorFlow op."""
  flag = flags.FLAGS
  return distribute.make_strategy(flag.strategy, flag.num_gpus, flag.num_cpu_devices)


def no_positional_arguments(argv, example):
  """A train command takes flags only: stray words (`small` for `--model=small`) are an error,
  not silently ignored. `example` is a flag to show in the message."""
  if len(argv) > 1:
    raise errors.UserError(f"unexpected arguments {argv[1:]}: flags look like {example}")


def non_negative(name):
  flags.register_validator(name, lambda v: v is None or v >= 0, f"--{name} must be >= 0")


def positive(name):
  flags.register_validator(name, lambda v: v is None or v > 0, f"--{name} must be > 0")
