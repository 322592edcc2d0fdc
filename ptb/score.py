"""Scores sentences with an exported PTB language model.

Usage: python -m ptb.score --model_dir=DIR "the company said" "another sentence" ...
Prints each sentence's log-probability (natural log, <eos> included), token count and
perplexity. Needs only the SavedModel.
"""
import tensorflow as tf
from absl import flags

from common import errors, storage

FLAGS = flags.FLAGS


def score(exported, sentences):
  """Returns a list of (log_prob, num_tokens, perplexity), one per sentence."""
  out = exported.signatures["score"](sentences=tf.constant(sentences))
  return list(zip(out["log_prob"].numpy().tolist(), out["num_tokens"].numpy().tolist(),
                  out["perplexity"].numpy().tolist()))


def main(argv):
  sentences = argv[1:]
  if not sentences:
    raise errors.UserError("no sentences given: python -m ptb.score --model_dir=DIR "
                           "\"a sentence\" ...")
  exported = storage.load_export(FLAGS.model_dir)
  print(f"{'log_prob':>10} {'tokens':>6} {'perplexity':>11}  sentence")
  for sentence, (log_prob, tokens, ppl) in zip(sentences, score(exported, sentences)):
    print(f"{log_prob:10.3f} {tokens:6d} {ppl:11.2f}  {sentence}")


if __name__ == "__main__":
  flags.DEFINE_string("model_dir", "/tmp/model", "Directory holding export/ from ptb.main.")
  errors.run(main)
