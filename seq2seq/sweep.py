"""What attention buys as inputs grow: one configuration trained without attention and with
it, its test quality plotted against source length.

    python -m seq2seq.sweep --model_dir=/tmp/sweep                   # reversal of 3-80 symbols
    python -m seq2seq.sweep --task=spa-eng --model_dir=/tmp/spa      # BLEU by length, as
                                                                     # Bahdanau et al.'s Fig. 2
The configuration is `--model` (default: the one `--task` names, else `reverse`) with any
field overridden by its flag, as in seq2seq.main. It is trained twice, with --attention=none
(the decoder sees only the encoder's final state) and with the attention `--attention` names
(the config's own unless given), in MODEL_DIR/none/ and MODEL_DIR/<attention>/, each as
seq2seq.main would train it there: a rerun resumes, and a finished run (its metrics.json
written) is read, not trained again. Then MODEL_DIR holds

    sweep.json   per run: the test results overall and by source length, the training time
    sweep.png    token accuracy and exact match (spa-eng: BLEU and token accuracy) against
                 source length, the two runs side by side
"""
import dataclasses
import json
import pathlib

from absl import flags

from common import errors, storage
from common import flags as common_flags
from common.progress import log
from seq2seq import configs, figures, main as seq2seq_main, train

FLAGS = flags.FLAGS
# What the figure's panels show, per task: (metrics.json key, axis label, value scale).
PANELS = {"spa-eng": (("test_bleu_by_length", "BLEU", 1),
                      ("test_token_accuracy_by_length", "token accuracy (%)", 100)),
          "other": (("test_token_accuracy_by_length", "token accuracy (%)", 100),
                    ("test_exact_match_by_length", "exact match (%)", 100))}
TARGET = 95.0  # the reversal sweep's target, token accuracy with attention at every length
MIN_SENTENCES = 20  # the fewest test sentences a bucket of the figure holds


def run_sweep(config, model_dir, options):
  """Trains (or reads) `config` without and with its attention; writes sweep.json/.png.

  Returns:
    {attention: that run's metrics.json}.
  """
  if config.attention == "none":
    raise errors.UserError("--attention=none is the baseline the sweep always trains: name "
                           "the attention to compare with it (--attention=bahdanau or luong)")
  model_dir = pathlib.Path(model_dir)
  results = {}
  for attention in ("none", config.attention):
    run_dir = model_dir / attention
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists():
      log("%s: finished before, reading %s", attention, metrics_file)
      results[attention] = json.loads(metrics_file.read_text())
      continue
    log("training with attention=%s in %s", attention, run_dir)
    results[attention] = train.train_and_evaluate(
        dataclasses.replace(config, attention=attention), str(run_dir), options)
  storage.write_json(model_dir / "sweep.json", summary(results))
  figures.save(figure(results, config), model_dir / "sweep.png")
  log("wrote %s and %s", model_dir / "sweep.json", model_dir / "sweep.png")
  return results


def summary(results):
  """{attention: the test results (overall and by length) and the training minutes}."""
  return {attention: {**{k: v for k, v in metrics.items() if k.startswith("test_")},
                      "training_minutes": metrics["history"][-1]["wall_seconds"] / 60
                      if metrics["history"] else None}
          for attention, metrics in results.items()}


def figure(results, config):
  """The two panels of PANELS for config.task, a line per run."""
  panels = []
  for key, label, scale in PANELS.get(config.task, PANELS["other"]):
    curves = {attention: {span: scale * value for span, value in metrics[key].items()
                          if span in _drawn(metrics["test_sentences_by_length"])}
              for attention, metrics in results.items()}
    target = TARGET if config.task == "reverse" and key.startswith("test_token") else None
    panels.append((label, curves, target))
  return figures.by_length(panels, f"{config.task}: test set, without and with attention "
                           f"(buckets of {MIN_SENTENCES}+ sentences)")


def _drawn(counts):
  """The buckets worth drawing: those of MIN_SENTENCES test sentences or more (a handful of
  sentences is noise: spa-eng's test set has 24 of 21 words or more), or the fullest ones
  where none has that many (a tiny test set)."""
  floor = min(MIN_SENTENCES, max(counts.values()))
  return {span for span, count in counts.items() if count >= floor}


def main(argv):
  common_flags.no_positional_arguments(argv, "--task=reverse")
  storage.check_model_dir(FLAGS.model_dir)
  if not FLAGS["model"].present:
    FLAGS.model = FLAGS.task.replace("-", "_") if FLAGS["task"].present else "reverse"
  config = common_flags.config_from_flags(configs.CONFIGS)
  options = train.RunOptions(pairs_file=FLAGS.pairs_file,
                             checkpoint_every_steps=FLAGS.checkpoint_every_steps,
                             log_every_steps=FLAGS.log_every_steps)
  run_sweep(config, FLAGS.model_dir, options)


if __name__ == "__main__":
  seq2seq_main.define_flags()
  errors.run(main)
