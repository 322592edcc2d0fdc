"""Translates sentences with an exported model; optionally draws the alignment.

Usage: python -m seq2seq.translate --model_dir=DIR "¿Todavía están en casa?" ...
       python -m seq2seq.translate --model_dir=DIR --plot=alignment.png "Dec 5th 2026"
Prints one translation a line. Needs only the SavedModel (MODEL_DIR/export). An input's
tokens that training never saw are translated as [UNK] and named on stderr; an empty input is
refused; an input longer than any training source is translated, with a warning: the model
never learned to read that far.
"""
import json
import pathlib

import tensorflow as tf
from absl import flags, logging

from common import errors, storage

FLAGS = flags.FLAGS
UNKNOWN_ID = 1  # seq2seq.data.UNK_ID: this command needs only TensorFlow and the export


def translate(exported, sentences):
  """The export's outputs for `sentences`, as numpy arrays."""
  out = exported.signatures["translate"](sentences=tf.constant(sentences))
  return {name: value.numpy() for name, value in out.items()}


def main(argv):
  sentences = argv[1:]
  if not sentences:
    raise errors.UserError('no sentences given: python -m seq2seq.translate --model_dir=DIR '
                           '"a sentence" ...')
  for sentence in sentences:
    if not sentence.strip():
      raise errors.UserError("an input is empty: give text to translate")
  if FLAGS.plot and len(sentences) != 1:
    raise errors.UserError(f"--plot draws one alignment: give one sentence, not "
                           f"{len(sentences)}")
  exported = storage.load_export(FLAGS.model_dir)
  out = translate(exported, sentences)
  longest = _longest_source(FLAGS.model_dir)
  for i, sentence in enumerate(sentences):
    tokens = [t.decode() for t in out["source_tokens"][i] if t]
    unknown = [t for t, token_id in zip(tokens, out["source_ids"][i]) if token_id == UNKNOWN_ID]
    if unknown:
      logging.warning("%r: %s never seen in training, read as [UNK]", sentence,
                      ", ".join(map(repr, dict.fromkeys(unknown))))
    if longest and len(tokens) > longest:
      logging.warning("%r has %d tokens, more than any training source (%d): expect worse",
                      sentence, len(tokens), longest)
    print(out["translations"][i].decode())
  if FLAGS.plot:
    source = [t.decode() for t in out["source_tokens"][0] if t]
    output = [t.decode() for t in out["output_tokens"][0] if t] + ["[END]"]
    if not out["alignments"][0].any():
      raise errors.UserError("this model has no attention (--attention=none): no alignment "
                             "to draw")
    # Imported here: translating needs TensorFlow and the export only, not matplotlib.
    from seq2seq import figures  # pylint: disable=import-outside-toplevel
    figures.save(figures.alignment(source, output,
                                   out["alignments"][0][:len(output), :len(source)]),
                 FLAGS.plot)
    logging.info("wrote %s", FLAGS.plot)


def _longest_source(model_dir):
  """The longest training source in tokens, from the run's metrics.json (None if absent)."""
  path = pathlib.Path(model_dir) / "metrics.json"
  if not path.exists():
    return None
  return json.loads(path.read_text()).get("longest_train_source")


if __name__ == "__main__":
  flags.DEFINE_string("model_dir", "/tmp/seq2seq", "Directory holding export/ from "
                      "seq2seq.main.")
  flags.DEFINE_string("plot", "", "Also draw the one sentence's alignment to this PNG file.")
  errors.run(main)
