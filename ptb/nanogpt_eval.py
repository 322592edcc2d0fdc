"""A character model's validation loss on nanoGPT's terms, beside ours, from the SavedModel.

nanoGPT's shakespeare_char (data/shakespeare_char/prepare.py, train.py's estimate_loss) and
its reported 1.4697 nats/char for tiny Shakespeare:
  split    the last 10% of the file by characters, `data[int(n * 0.9):]` (ours: `ptb.data`
           gives 0.9 n to 0.95 n to valid and the rest to test; here it is one split).
  windows  random starts, uniform over [0, len(split) - window) (`torch.randint`); each window
           reads `window` characters from an empty context (for an LSTM: the zero state) and
           predicts the next character at each of them; the loss is the mean over every
           position of every window, so the first characters, predicted from almost nothing,
           count as much as the last. nanoGPT draws 200 batches of 64 windows of 256.
Ours (`ptb.evaluation.evaluate` with batch 1): the same split read once from its start, the
state carried the whole way, every character after the first predicted:

    split    c0 c1 c2 c3 c4 c5 c6 c7 c8 c9 ...                (L characters)
    window   from zero: c3 c4 c5 c6 -> predicts c4 c5 c6 c7    (window 4 at start 3)
    carried  from zero: c0 c1 ... c(L-2) -> predicts c1 ... c(L-1), once

Both run the export's `step` signature (ptb/export.py), one token per call, in a graph loop
(`_token_log_probs`), over a batch of windows at a time; old exports have it too.
"""
import collections
import math

import numpy as np
import tensorflow as tf

from common.errors import UserError
from ptb import data, export

VALID_FRACTION = 0.9  # nanoGPT's prepare.py: val_data = data[int(n * 0.9):]
WINDOW = 256          # nanoGPT's block_size for shakespeare_char
# The estimate's standard error is std / sqrt(windows); its goal is half of 0.005, the third
# decimal nanoGPT reports. No trained LSTM was at hand to measure the per-window std on, so it
# was measured under this protocol with character n-grams (Witten-Bell, orders 4 to 8) on tiny
# Shakespeare: 0.26 to 0.36 nats/char at losses of 1.68 to 1.88. 16,384 windows keep the
# error below 0.0025 for an std below 0.32; `report` says how many would do for a larger one.
WINDOWS = 16_384
STANDARD_ERROR_GOAL = 0.0025
BATCH = 1024          # windows run side by side in one batch of the step signature
CHUNK = 4096          # characters of the carried pass per call (the state goes from call to call)

Result = collections.namedtuple("Result", [
    "name", "start", "end", "windows", "window", "seed",
    "loss", "standard_error",          # nanoGPT's protocol: mean NLL per character, its error
    "carried_loss", "carried_tokens",  # ours: mean NLL per character over the whole split
    "unseen"])                         # characters of the split the model never saw (<unk>)


def validation_split(text):
  """(start, the text from there): nanoGPT's validation split, the last 10% by code point."""
  start = int(len(text) * VALID_FRACTION)
  return start, text[start:]


def window_starts(length, window, count, seed):
  """`count` random window starts in [0, length - window), nanoGPT's torch.randint, seeded:
  window i reads tokens [start, start + window] (inputs, then targets one to the right)."""
  return np.random.default_rng(seed).integers(0, length - window, size=count)


def _token_log_probs(exported):
  """A function (ids [B, T + 1], state) -> (log p(ids[:, t + 1] | ids[:, :t + 1]) [B, T],
  state after ids[:, T - 1]): the export's step signature in a graph loop, so a window of
  T tokens costs T calls inside one graph, not T calls from Python."""
  step = exported.signatures["step"]
  zero = exported.signatures["initial_state"](batch_size=tf.constant(1))["state"]
  state_spec = tf.TensorSpec([zero.shape[0], zero.shape[1], None, zero.shape[3]], tf.float32)

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), state_spec])
  def log_probs(ids, state):
    steps = tf.shape(ids)[1] - 1
    out = tf.TensorArray(tf.float32, size=steps)

    def body(t, state, out):
      result = step(ids=ids[:, t], state=state)
      target = tf.gather(result["log_probs"], ids[:, t + 1], batch_dims=1)  # [B]
      return t + 1, result["state"], out.write(t, target)

    _, state, out = tf.while_loop(lambda t, *_: t < steps, body, (0, state, out))
    return tf.transpose(out.stack()), state                                # [B, T]

  return log_probs


def _zero_state(exported, batch_size):
  return exported.signatures["initial_state"](batch_size=tf.constant(batch_size))["state"]


def window_losses(exported, ids, starts, window, batch=BATCH):
  """Mean NLL per character of each window, each read from the zero state.

  Returns:
    float64 [len(starts)]: window i's mean of -log p over its `window` predictions.
  """
  log_probs = _token_log_probs(exported)
  ids = np.asarray(ids, np.int32)
  losses = []
  for first in range(0, len(starts), batch):
    rows = starts[first:first + batch, None] + np.arange(window + 1)     # [B, window + 1]
    nll, _ = log_probs(tf.constant(ids[rows]), _zero_state(exported, len(rows)))
    losses.append(-nll.numpy().astype(np.float64).mean(axis=1))
  return np.concatenate(losses)


def carried_loss(exported, ids, chunk=CHUNK):
  """Mean NLL per character of an id stream read once from the zero state, the state carried:
  every token after the first predicted (`ptb.evaluation.evaluate` with batch 1).

  Returns:
    (mean NLL, number of predictions = len(ids) - 1).
  """
  log_probs = _token_log_probs(exported)
  ids = np.asarray(ids, np.int32)[None, :]
  state, total = _zero_state(exported, 1), 0.0
  for start in range(0, ids.shape[1] - 1, chunk):
    nll, state = log_probs(tf.constant(ids[:, start:start + chunk + 1]), state)
    total -= float(nll.numpy().astype(np.float64).sum())
  return total / (ids.shape[1] - 1), ids.shape[1] - 1


def evaluate(exported, text_file="", windows=WINDOWS, window=WINDOW, seed=0):
  """Both numbers for a character model on a text file's last 10% (the module docstring).

  Args:
    exported: a loaded MODEL_DIR/export of a character model.
    text_file: a UTF-8 text ('': tiny Shakespeare, `ptb.data.tiny_shakespeare`).
    windows, window, seed: nanoGPT's protocol: how many windows, of how many characters,
      drawn from which seed.

  Returns:
    a Result.

  Raises:
    UserError: a word-level model, fewer than 2 windows or a window below 1, an unreadable
      text, or a split shorter than a window and its next character.
  """
  if export.read_level(exported) != "char":
    raise UserError("--protocol=nanogpt reads characters, but this export is a word-level "
                    "model: pass the --model_dir of a character model (--model=char)")
  if windows < 2 or window < 1:
    raise UserError(f"--windows={windows} --window={window}: use --windows=2 or more (the "
                    "standard error needs two) and --window=1 or more")
  name = str(text_file or data.tiny_shakespeare())
  text = data.read_text(name)
  start, split = validation_split(text)
  if len(split) < window + 1:
    raise UserError(f"{name}: its last 10% (characters {start}-{len(text)}) holds {len(split)}"
                    f" characters, too few for --window={window} (a window reads {window + 1})"
                    ": use a longer text or a smaller --window")
  vocab = export.read_vocabulary(exported)
  ids = data.to_ids(split, vocab, f"{name}, characters {start}-{len(text)}", "characters")
  known = set(vocab)
  unseen = sum(character not in known for character in split)
  losses = window_losses(exported, ids, window_starts(len(split), window, windows, seed), window)
  carried, tokens = carried_loss(exported, ids)
  return Result(name, start, len(text), windows, window, seed, losses.mean(),
                losses.std(ddof=1) / math.sqrt(windows), carried, tokens, unseen)


def report(result):
  """The lines `python -m ptb.score --protocol=nanogpt` prints for a Result."""
  to_bits = 1 / math.log(2)
  nanogpt = f"nanoGPT: {result.windows} windows of {result.window} from zero, seed {result.seed}"
  carried = "ours: the whole split once, the state carried"
  lines = [f"{result.name}: nanoGPT's validation split, the last 10% (characters "
           f"{result.start}-{result.end}, {result.end - result.start} characters)",
           f"{'':54} {'nats/char':>9} {'std error':>9} {'bits/char':>9}",
           f"{nanogpt:54} {result.loss:9.4f} {result.standard_error:9.4f} "
           f"{result.loss * to_bits:9.4f}",
           f"{carried:54} {result.carried_loss:9.4f} {'':9} {result.carried_loss * to_bits:9.4f}"]
  if result.unseen:
    lines.append(f"({result.unseen} characters the model never saw read as {data.UNK})")
  if result.standard_error >= STANDARD_ERROR_GOAL:
    needed = math.ceil(result.windows * (result.standard_error / STANDARD_ERROR_GOAL) ** 2)
    lines.append(f"(the standard error is not below {STANDARD_ERROR_GOAL}: --windows={needed} "
                 "would bring it there)")
  return lines
