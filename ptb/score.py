"""Scores sentences with an exported language model, word or character level.

Usage: python -m ptb.score --model_dir=DIR "the company said" "another sentence" ...
Prints each sentence's log-probability (natural log), token count and perplexity, and for a
character model its bits per character. Words are scored as a PTB line (<eos> included),
characters as text from a line start (ptb/export.py says exactly how). Needs only the
SavedModel.
"""
import collections
import math

import tensorflow as tf
from absl import flags

from common import errors, storage
from ptb import export

FLAGS = flags.FLAGS

# bits_per_char = -log_prob / num_tokens / ln 2; None for a word model. An empty string at
# char level has no tokens: its perplexity and bits per character are NaN.
Score = collections.namedtuple("Score", "log_prob num_tokens perplexity bits_per_char")


def score(exported, sentences):
  """Scores raw strings with the export's own tokenizer.

  Returns:
    a list of Score, one per sentence.
  """
  out = exported.signatures["score"](sentences=tf.constant(sentences))
  char = export.read_level(exported) == "char"
  scores = []
  for log_prob, tokens, ppl in zip(out["log_prob"].numpy().tolist(),
                                   out["num_tokens"].numpy().tolist(),
                                   out["perplexity"].numpy().tolist()):
    bits = (-log_prob / tokens / math.log(2) if tokens else math.nan) if char else None
    scores.append(Score(log_prob + 0.0, tokens, ppl, bits))  # + 0.0: no -0.0 printed
  return scores


def main(argv):
  sentences = argv[1:]
  if not sentences:
    raise errors.UserError("no sentences given: python -m ptb.score --model_dir=DIR "
                           "\"a sentence\" ...")
  exported = storage.load_export(FLAGS.model_dir)
  results = score(exported, sentences)
  char = results[0].bits_per_char is not None
  header = f"{'log_prob':>10} {'tokens':>6} {'perplexity':>11}"
  print(header + (f" {'bits/char':>9}" if char else "") + "  sentence")
  for sentence, result in zip(sentences, results):
    bits = f" {result.bits_per_char:9.3f}" if char else ""
    print(f"{result.log_prob:10.3f} {result.num_tokens:6d} {result.perplexity:11.2f}{bits}  "
          f"{sentence}")


if __name__ == "__main__":
  flags.DEFINE_string("model_dir", "/tmp/model", "Directory holding export/ from ptb.main.")
  errors.run(main)
