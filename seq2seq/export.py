"""The translator as a SavedModel that needs TensorFlow alone.

    translator = tf.saved_model.load("MODEL_DIR/export")
    out = translator.signatures["translate"](sentences=tf.constant(["¿Todavía están en casa?"]))
    out["translations"]     string [N]: the output, tokens joined as the target side writes them
    out["alignments"]       float32 [N, output tokens + 1, source tokens] ([END]'s row last;
                            zeros without attention, and past a row's own lengths)
    out["source_tokens"]    string [N, source tokens] (ragged rows padded with "")
    out["output_tokens"]    string [N, output tokens + 1]
    out["source_ids"]       int32 [N, source tokens]: their ids, [UNK] (1) for a token the
                            vocabulary does not hold, [PAD] (0) past a row's length

The raw strings are standardised and split in the graph by the same functions training used
(`seq2seq.data.tf_standardize`, `tf_tokenize`), looked up in the vocabularies it carries, and
decoded with `seq2seq.decoding`'s beam search (`config.beam_width`; greedy when it is 1), one
padded batch.
"""
import tensorflow as tf

from common import lstm, storage
from seq2seq import data, decoding


class Translator(tf.Module):
  """The model with its two vocabularies and its decoding settings."""

  def __init__(self, model, vocabs, config):
    super().__init__()
    self.model, self.config = model, config
    source, target = vocabs
    self.source_ids = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(source.tokens, tf.range(len(source), dtype=tf.int32)),
        default_value=data.UNK_ID)
    self.target_tokens = tf.constant(target.tokens)
    self.level = source.level

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def translate(self, sentences):
    tokens = data.tf_tokenize(data.tf_standardize(sentences, self.level), self.level)
    ids = tf.ragged.map_flat_values(self.source_ids.lookup, tokens)
    source = ids.to_tensor(data.PAD_ID)  # [N, source tokens]
    if self.config.beam_width > 1:
      out, _, attention = decoding.beam_search_tensors(
          self.model, source, self.config.beam_width, self.config.max_length,
          self.config.length_penalty)
    else:
      out, _, attention = decoding.greedy_search(self.model, source, self.config.max_length)
    words = tf.gather(self.target_tokens, out)  # [N, steps]
    kept = tf.logical_and(tf.not_equal(out, data.PAD_ID), tf.not_equal(out, data.END_ID))
    separator = "" if self.level == "char" else " "
    translations = tf.strings.reduce_join(tf.where(kept, words, ""), axis=1,
                                          separator=separator)
    if separator:  # the empty strings of the dropped tokens left double spaces
      translations = tf.strings.strip(tf.strings.regex_replace(translations, " +", " "))
    if attention is None:
      attention = tf.zeros([tf.shape(out)[0], tf.shape(out)[1], tf.shape(source)[1]])
    return {"translations": translations, "alignments": attention,
            "source_tokens": tokens.to_tensor(""), "output_tokens": tf.where(kept, words, ""),
            "source_ids": source}


def export(model, vocabs, config, export_dir):
  """Writes the SavedModel (swapped in whole) with its `translate` signature, traced on
  TensorFlow's standard ops whatever the training ran (no cuDNN op, which has no CPU kernel),
  so that it serves on any machine."""
  translator = Translator(model, vocabs, config)
  with lstm.standard_ops_only(model):
    return storage.save_model(translator, export_dir,
                              {"translate": translator.translate,
                               "serving_default": translator.translate})
