"""Exact evaluation of the language model: the mean NLL per token of a whole split, the state
carried from window to window, and the numbers reported for it (perplexity, bits per char).
"""
import math

import numpy as np
import tensorflow as tf

from common import distribute, metrics
from ptb import data


def evaluate(eval_step, model, ids, batch_size, num_steps, strategy=None):
  """Mean NLL per token of a whole id stream, state carried from window to window.

  With batch_size 1 every target after the first token is scored, the last window being
  shorter; with a larger batch it is the tutorial's valid evaluation (ptb_producer windows).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if batch_size == 1:
    stream = np.asarray(ids, np.int32)[None, :]
    bounds = list(range(0, len(ids) - 1, num_steps)) + [len(ids) - 1]
    windows = tf.data.Dataset.from_generator(
        lambda: ((stream[:, a:b], stream[:, a + 1:b + 1]) for a, b in zip(bounds, bounds[1:])),
        output_signature=(tf.TensorSpec([1, None], tf.int32),) * 2)
    tokens = len(ids) - 1
  else:
    inputs, targets = data.windows(ids, batch_size, num_steps)
    windows = tf.data.Dataset.from_tensor_slices((inputs, targets))
    tokens = targets.size
  state = distribute.split_rows(strategy, model.zero_state(batch_size), axis=2)
  total_nll = 0.0
  for (x, y), _ in distribute.distribute_batches(strategy, lambda: windows.prefetch(2)):
    nll, state = eval_step(x, y, state)
    total_nll += float(nll)
  return total_nll / tokens


def split_metrics(config, nll):
  """A split's numbers from its mean NLL per token: loss (nats), perplexity, and for
  characters bits per character."""
  values = {"loss": nll, "perplexity": metrics.perplexity(nll, 1)}
  if config.level == "char":
    values["bits_per_char"] = nll / math.log(2)
  return values


def bits(config, nll):
  """' (N bits/char)' for a character model's mean NLL, else ''."""
  return f" ({nll / math.log(2):.3f} bits/char)" if config.level == "char" else ""
