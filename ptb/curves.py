"""Validation perplexity per epoch of finished or running ptb runs, in one figure, with the
tutorial's final validation perplexity marked for each configuration it has.

    python -m ptb.curves --run=small=/tmp/ptb_small --run=medium=/tmp/ptb_medium \\
        --out=docs/ptb_valid.png

Each --run is LABEL=MODEL_DIR; MODEL_DIR/history.json (written by ptb.main after every epoch)
gives the curve, so a run still training is drawn as far as it has gone. A label that names a
tutorial configuration (small, medium, large) also gets the tutorial's final number as a dashed
line of its colour, and medium the range its own script reached when run again (below).
"""
import json
import pathlib

import matplotlib
import matplotlib.ticker
from absl import flags

from common import errors, storage

matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402  pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
# The tutorial's README, the final validation perplexity of each configuration.
TUTORIAL_VALID = {"small": 121.39, "medium": 86.16, "large": 82.62}
# The tutorial's ptb_word_lm.py itself, run ten times with TensorFlow 1.0: the lowest and
# highest final validation perplexity, and the epoch (github.com/tensorflow/models/issues/1057).
TUTORIAL_SCRIPT_VALID = {"medium": (87.345, 87.883, 39)}
TICKS = (70, 80, 90, 100, 120, 150, 200, 300, 500, 1000)  # the log axis' labelled values


def read_curve(model_dir):
  """[(epoch, validation perplexity)] of MODEL_DIR/history.json.

  Raises:
    UserError: no history.json there, or one without a validation perplexity.
  """
  path = pathlib.Path(model_dir) / "history.json"
  if not path.is_file():
    raise errors.UserError(f"{path} does not exist: pass --run=LABEL=MODEL_DIR with the "
                           "--model_dir of a ptb.main run that finished an epoch")
  try:
    rows = json.loads(path.read_text())
    return [(int(row["epoch"]), float(row["valid_perplexity"])) for row in rows]
  except (ValueError, KeyError, TypeError):
    raise errors.UserError(f"{path} is not a ptb run's history (epoch and valid_perplexity "
                           "per row): pass a ptb.main --model_dir") from None


def figure(curves):
  """A Figure: {label: [(epoch, perplexity)]} on a log axis; the tutorial's final numbers dashed,
  the range its own script reached a diamond with error bars."""
  fig, axes = pyplot.subplots(figsize=(6.4, 4.0))
  for label, points in curves.items():
    [line] = axes.plot([e for e, _ in points], [p for _, p in points], marker=".",
                       label=f"{label}: {points[-1][1]:.2f} after {points[-1][0]} epochs")
    if label in TUTORIAL_VALID:
      axes.axhline(TUTORIAL_VALID[label], color=line.get_color(), linestyle="--", linewidth=1,
                   label=f"{label}, the tutorial's final: {TUTORIAL_VALID[label]}")
    if label in TUTORIAL_SCRIPT_VALID:
      best, worst, epoch = TUTORIAL_SCRIPT_VALID[label]
      middle = (best + worst) / 2
      axes.errorbar([epoch], [middle], yerr=[[middle - best], [worst - middle]], fmt="D",
                    color=line.get_color(), markerfacecolor="none", capsize=4,
                    label=f"{label}, the tutorial's script, 10 runs: {best}-{worst}")
  axes.set_yscale("log")
  low, high = axes.get_ylim()
  axes.set_yticks([t for t in TICKS if low <= t <= high], minor=False)
  axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
  axes.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  axes.set(xlabel="epoch", ylabel="validation perplexity (log scale)",
           title="PTB word-level LSTM: validation perplexity per epoch")
  axes.grid(alpha=0.3, which="both")
  axes.legend(fontsize=8)
  fig.tight_layout()
  return fig


def parse_runs(runs):
  """{label: model_dir} of the --run values, each LABEL=MODEL_DIR."""
  if not runs:
    raise errors.UserError("no runs: pass --run=LABEL=MODEL_DIR, once per run")
  parsed = {}
  for run in runs:
    label, sep, model_dir = run.partition("=")
    if not sep or not label or not model_dir:
      raise errors.UserError(f"--run={run} is not LABEL=MODEL_DIR (e.g. "
                             "--run=medium=/tmp/ptb_medium)")
    parsed[label] = model_dir
  return parsed


def main(argv):
  if len(argv) > 1:
    raise errors.UserError(f"unexpected arguments {argv[1:]}: pass runs as --run=LABEL=DIR")
  curves = {label: read_curve(model_dir) for label, model_dir in parse_runs(FLAGS.run).items()}
  storage.save_figure(figure(curves), FLAGS.out)


if __name__ == "__main__":
  flags.DEFINE_multi_string("run", [], "LABEL=MODEL_DIR of a ptb.main run; repeat per run.")
  flags.DEFINE_string("out", "ptb_valid.png", "The PNG to write.")
  errors.run(main)
