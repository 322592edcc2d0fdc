"""seq2seq's figures (matplotlib, Agg): an alignment heatmap, quality against source length
with and without attention, and a figure as an image array for TensorBoard."""
import matplotlib
import numpy as np

from common import storage

matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402  pylint: disable=wrong-import-position


def alignment(source_tokens, output_tokens, weights, title=""):
  """A Figure: `weights` [outputs, sources] as a heatmap, the tokens along its axes (a
  space drawn as ␣)."""
  figure, axes = pyplot.subplots(figsize=(1.2 + 0.4 * len(source_tokens),
                                          1.0 + 0.4 * len(output_tokens)))
  axes.imshow(weights, cmap="viridis", vmin=0, vmax=1)
  def shown(tokens):
    return [token.replace(" ", "␣") for token in tokens]
  axes.set_xticks(range(len(source_tokens)), shown(source_tokens), rotation=90)
  axes.set_yticks(range(len(output_tokens)), shown(output_tokens))
  axes.set(xlabel="source", ylabel="output")
  if title:
    axes.set_title(title, fontsize=9)
  figure.tight_layout()
  return figure


def by_length(panels, title=""):
  """A Figure of quality against source length, a panel per metric, a line per run.

  Args:
    panels: [(ylabel, {label: {"first-last": value}}, reference or None)]: the curves as
      metrics.json's *_by_length entries; a reference draws a dashed line (e.g. a target).
    title: above the panels.
  """
  figure, axes = pyplot.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8),
                                 squeeze=False)
  for ax, (ylabel, curves, reference) in zip(axes[0], panels):
    for label, buckets in curves.items():
      spans = sorted((tuple(map(int, key.split("-"))), value) for key, value in buckets.items())
      ax.plot([(first + last) / 2 for (first, last), _ in spans],
              [value for _, value in spans], marker="o", label=label)
    if reference is not None:
      ax.axhline(reference, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="source length (tokens, bucket middle)", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
  if title:
    figure.suptitle(title)
  figure.tight_layout()
  return figure


def save(figure, path):
  """Writes `figure` to `path` (PNG) atomically and closes it."""
  storage.save_figure(figure, path)


def to_image(figure):
  """uint8 RGB [height, width, 3] of `figure` (for tf.summary.image); closes it."""
  figure.canvas.draw()
  image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
  pyplot.close(figure)
  return image
