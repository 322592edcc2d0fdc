"""Trains the encoder-decoder from the command line: flags in, `seq2seq.train` does the rest.

Usage: python -m seq2seq.main --task=dates --model_dir=DIR             # minutes
       python -m seq2seq.main --task=spa-eng --model_dir=DIR     # or --pairs_file=FILE
       python -m seq2seq.main --task=reverse --attention=none --model_dir=DIR
       python -m seq2seq.main --helpfull   # every flag; each config field is one
`--task` picks the configuration of that name unless `--model` names another.
"""
import os

from absl import flags

from common import errors, storage
from common import flags as common_flags
from seq2seq import configs, train

FLAGS = flags.FLAGS


def define_flags():
  """The command line: --model (or --task) picks a config, a flag per field overrides it."""
  flags.DEFINE_string("model_dir", "/tmp/seq2seq", "Checkpoints, TensorBoard logs, "
                      "metrics.json and the SavedModel go here; rerun the same command to "
                      "resume.")
  flags.DEFINE_string("pairs_file", os.environ.get("SPA_ENG_FILE", ""), "--task=spa-eng: a "
                      "UTF-8 file of tab-separated sentence pairs, English<TAB>Spanish as the "
                      "tutorial's spa-eng/spa.txt (default: $SPA_ENG_FILE, else the tutorial's "
                      "spa.txt, downloaded once into ~/.cache/rnn_tutorials/spa-eng/).")
  common_flags.define_run_flags(checkpoint_every_steps=500, log_every_steps=0)
  common_flags.define_config_flags(configs.SpaEngConfig, configs.CONFIGS, "spa_eng",
                                   configs.CHOICES, skip=())
  for name in ("units", "embedding_size", "batch_size", "epochs", "max_length", "vocab_size",
               "beam_width", "min_length", "learning_rate"):
    common_flags.positive(name)
  flags.register_validator("dropout", lambda v: v is None or 0 <= v < 1,
                           "--dropout must be in [0, 1)")


def main(argv):
  common_flags.no_positional_arguments(argv, "--task=dates")
  storage.check_model_dir(FLAGS.model_dir)
  if FLAGS["task"].present and not FLAGS["model"].present:
    FLAGS.model = FLAGS.task.replace("-", "_")
  config = common_flags.config_from_flags(configs.CONFIGS)
  options = train.RunOptions(pairs_file=FLAGS.pairs_file,
                             checkpoint_every_steps=FLAGS.checkpoint_every_steps,
                             log_every_steps=FLAGS.log_every_steps)
  train.train_and_evaluate(config, FLAGS.model_dir, options)


if __name__ == "__main__":
  define_flags()
  errors.run(main)
