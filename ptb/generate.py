"""Samples text from an exported language model, word or character level.

Usage: python -m ptb.generate --model_dir=DIR --prime="the company said" --num_tokens=50 \
           --temperature=0.8 --top_k=40 --seed=1
The prime is read as the model reads text: its words (each lower-cased if only that is in the
vocabulary, as for PTB), or its characters; tokens the model never saw read as <unk>, with a
note. Temperature 0 is greedy; --top_k samples from the k most likely tokens only; a seed makes
sampling repeatable. Each token is printed as soon as it is sampled. Needs only the SavedModel.
"""
import sys

import numpy as np
import tensorflow as tf
from absl import flags

from common import errors, storage
from ptb import data, export

FLAGS = flags.FLAGS


def tokenize(text, vocab, level):
  """The tokens of `text` as the export's score reads them: its characters, or its
  whitespace-split words, each as it is if in `vocab`, else lower-cased if that is."""
  if level == "char":
    return list(text)
  known = set(vocab)
  return [word if word in known or word.lower() not in known else word.lower()
          for word in text.split()]


def generate(exported, prime, num_tokens, temperature=1.0, seed=0, top_k=None):
  """Continues `prime` (a string) by `num_tokens` tokens, from the state after the start token
  (<eos> or "\\n") and the prime.

  Args:
    temperature, top_k: how each token is drawn (see `choose`).
    seed: the same seed draws the same tokens.

  Yields:
    each sampled token (a word, <eos>, or a character) as soon as it is sampled.
  """
  vocab, level = export.read_vocabulary(exported), export.read_level(exported)
  token_to_id = {token: i for i, token in enumerate(vocab)}
  unk = token_to_id.get(data.UNK, 0)
  ids = [export.start_id(vocab, level)] + [token_to_id.get(token, unk)
                                           for token in tokenize(prime, vocab, level)]
  step = exported.signatures["step"]
  state = exported.signatures["initial_state"](batch_size=tf.constant(1))["state"]
  rng = np.random.default_rng(seed)
  for position in range(len(ids) - 1 + num_tokens):
    out = step(ids=tf.constant([ids[position]], tf.int32), state=state)
    state = out["state"]
    if position >= len(ids) - 1:  # past the prime: sample the next token and feed it
      ids.append(choose(out["log_probs"].numpy()[0], temperature, rng, top_k))
      yield vocab[ids[-1]]


def choose(log_probs, temperature, rng, top_k=None):
  """Draws one id from log-probabilities [vocab].

  Args:
    temperature: 0 takes the most likely id; otherwise ids are drawn from
      softmax(log_probs / temperature).
    rng: a numpy Generator.
    top_k: draw among the k most likely ids only (None, or k >= vocab: among all).

  Returns:
    the id, an int.
  """
  if temperature == 0:
    return int(np.argmax(log_probs))
  logits = np.asarray(log_probs, np.float64) / temperature
  candidates = np.arange(len(logits))
  if top_k is not None and top_k < len(logits):
    candidates = np.argpartition(logits, -top_k)[-top_k:]  # exactly k, ties or not
  probs = np.exp(logits[candidates] - logits[candidates].max())
  return int(candidates[rng.choice(len(candidates), p=probs / probs.sum())])


def write_text(prime_tokens, tokens, level, out=sys.stdout):
  """Prints the prime, then each token as it arrives (flushed), as text: characters as they
  are; words joined by spaces with <eos> as a line break."""
  text = "".join(prime_tokens) if level == "char" else " ".join(prime_tokens)
  out.write(text)
  out.flush()
  line_start = not text or text.endswith("\n")
  for token in tokens:
    if level == "word":
      token = "\n" if token == data.EOS else token if line_start else f" {token}"
    out.write(token)
    out.flush()
    line_start = token.endswith("\n")
  if not line_start:
    out.write("\n")


def main(argv):
  del argv
  if FLAGS.top_k is not None and FLAGS.top_k <= 0:
    raise errors.UserError(f"--top_k={FLAGS.top_k} is not positive: give k >= 1, or leave "
                           "--top_k out to sample from the full distribution")
  exported = storage.load_export(FLAGS.model_dir)
  vocab, level = export.read_vocabulary(exported), export.read_level(exported)
  prime = tokenize(FLAGS.prime, vocab, level)
  if level == "word" and not prime:
    raise errors.UserError("--prime is empty: give at least one word, e.g. --prime='the'")
  known = set(vocab)
  unknown = list(dict.fromkeys(token for token in prime if token not in known))
  if unknown:
    # Characters quoted, so that an unseen space or tab is visible.
    shown = " ".join(map(repr, unknown) if level == "char" else unknown)
    print(f"(not in the vocabulary, read as {data.UNK}: {shown})", flush=True)
  tokens = generate(exported, FLAGS.prime, FLAGS.num_tokens, FLAGS.temperature, FLAGS.seed,
                    FLAGS.top_k)
  write_text(prime, tokens, level)


if __name__ == "__main__":
  flags.DEFINE_string("model_dir", "/tmp/model", "Directory holding export/ from ptb.main.")
  flags.DEFINE_string("prime", "the", "Text to start from: words, or any characters for a "
                      "character model (which may also start from '').")
  flags.DEFINE_integer("num_tokens", 50, "Tokens (words or characters) to generate.",
                       lower_bound=1)
  flags.DEFINE_alias("num_words", "num_tokens")
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature; 0 is greedy.", lower_bound=0.0)
  flags.DEFINE_integer("top_k", None, "Sample from the k most likely tokens only (default: "
                       "the full distribution).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  errors.run(main)
