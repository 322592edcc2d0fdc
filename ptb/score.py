"""Scores sentences with an exported language model, word or character level, or evaluates a
character model on a text's last 10% as nanoGPT does.

Usage: python -m ptb.score --model_dir=DIR "the company said" "another sentence" ...
       python -m ptb.score --model_dir=DIR --protocol=nanogpt [--text_file=input.txt]
           [--windows=16384 --window=256 --seed=0]
Sentences: prints each one's log-probability (natural log), token count and perplexity, and
for a character model its bits per character. Words are scored as a PTB line (<eos>
included), characters as text from a line start (ptb/export.py says exactly how).
--protocol=nanogpt: the mean loss of random windows from a zero state (nanoGPT's reported val
loss) with its standard error, and ours, the state carried through the whole split
(ptb/nanogpt_eval.py); without --text_file, tiny Shakespeare. Needs only the SavedModel.
"""
import collections
import math

import tensorflow as tf
from absl import flags

from common import errors, storage
from ptb import export, nanogpt_eval

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
  if FLAGS.protocol:
    if sentences:
      raise errors.UserError(f"--protocol={FLAGS.protocol} evaluates a text file, not sentences "
                             f"({sentences[0]!r}): pass --text_file=FILE, or drop --protocol to "
                             "score the sentences")
    result = nanogpt_eval.evaluate(storage.load_export(FLAGS.model_dir), FLAGS.text_file,
                                   FLAGS.windows, FLAGS.window, FLAGS.seed)
    print("\n".join(nanogpt_eval.report(result)))
    return
  stray = [f"--{name}" for name in PROTOCOL_FLAGS if FLAGS[name].present]
  if stray:
    verb, them = ("is", "it") if len(stray) == 1 else ("are", "them")
    raise errors.UserError(f"{', '.join(stray)} {verb} read only with --protocol=nanogpt: add "
                           f"it to evaluate a text, or leave {them} out to score sentences")
  if not sentences:
    raise errors.UserError("no sentences given: python -m ptb.score --model_dir=DIR "
                           "\"a sentence\" ... (or --protocol=nanogpt to evaluate a text)")
  exported = storage.load_export(FLAGS.model_dir)
  results = score(exported, sentences)
  char = results[0].bits_per_char is not None
  header = f"{'log_prob':>10} {'tokens':>6} {'perplexity':>11}"
  print(header + (f" {'bits/char':>9}" if char else "") + "  sentence")
  for sentence, result in zip(sentences, results):
    bits = f" {result.bits_per_char:9.3f}" if char else ""
    print(f"{result.log_prob:10.3f} {result.num_tokens:6d} {result.perplexity:11.2f}{bits}  "
          f"{sentence}")


PROTOCOL_FLAGS = ("text_file", "windows", "window", "seed")


if __name__ == "__main__":
  flags.DEFINE_string("model_dir", "/tmp/model", "Directory holding export/ from ptb.main.")
  flags.DEFINE_enum("protocol", None, ["nanogpt"], "Evaluate a character model on a text's "
                    "last 10% instead of scoring sentences: nanoGPT's random windows from a "
                    "zero state, and ours, the state carried through the split.")
  flags.DEFINE_string("text_file", "", "--protocol's text (default: tiny Shakespeare, "
                      "$SHAKESPEARE_FILE or downloaded once into ~/.cache/rnn_tutorials).")
  flags.DEFINE_integer("windows", nanogpt_eval.WINDOWS, "--protocol's number of random "
                       "windows (the standard error falls as 1/sqrt of it).")
  flags.DEFINE_integer("window", nanogpt_eval.WINDOW, "--protocol's window in characters "
                       "(nanoGPT's block_size).")
  flags.DEFINE_integer("seed", 0, "--protocol's seed: which windows are drawn.")
  errors.run(main)
