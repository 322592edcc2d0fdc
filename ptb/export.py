"""The SavedModel that carries the vocabulary and the level, and the embeddings for
TensorBoard's projector.

Signatures (all usable with TensorFlow alone, `tf.saved_model.load(MODEL_DIR/export)`); the
tokenizer is inside the graph, so clients pass raw Unicode strings:
  score(sentences: string [N]) -> log_prob, num_tokens, perplexity  (also serving_default)
      word level: split on whitespace (as str.split); each word looked up as it is, else lower-cased (PTB is
        lower case but for N; a cased text keeps its cases), else it becomes <unk>. Scored as
        a PTB line: from the zero state after an <eos>, every word, then the closing <eos>.
      char level: split into Unicode code points (UTF-8; no lower-casing); unseen characters
        become <unk>. Scored as the start of a line: from the zero state after a "\\n" (the
        char analogue of the leading <eos>; <unk> if the text had no newline), every
        character of the string and no closing newline. "hé" is 2 tokens: p(h | \\n) p(é | \\nh).
        The empty string has 0 tokens: log_prob 0, perplexity NaN.
      log_prob is natural log; perplexity = exp(-log_prob / num_tokens).
  step(ids: int32 [B], state: float32 [layers, 2, B, hidden]) -> log_probs [B, vocab], state
      One token per stream, for streaming generation.
  initial_state(batch_size: int32 []) -> state (zeros);  vocabulary() -> words: string [vocab]
  level() -> level: string [] ("word" or "char"; an export without it is word level)
"""
import pathlib

import tensorflow as tf
from tensorboard.plugins import projector

from common import lstm, storage
from ptb import data

# What Python's str.split() splits on (str.isspace: also U+3000, the ideographic space, U+00A0
# and the like), which is how the words were read for training; tf.strings.split alone splits
# on ASCII whitespace only.
WHITESPACE = r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}]"


class LanguageModelExport(tf.Module):
  """Wraps a trained PTBModel and its vocabulary in serving signatures."""

  def __init__(self, model, vocab):
    super().__init__()
    self.model = model
    self.level_name = getattr(model.config, "level", "word")
    self.words = tf.constant(vocab)
    self.start_id = start_id(vocab, self.level_name)
    self.unk_id = vocab.index(data.UNK) if data.UNK in vocab else 0
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(self.words, tf.range(len(vocab), dtype=tf.int32)),
        default_value=-1)
    state_shape = [model.config.num_layers, 2, None, model.config.hidden_size]
    self.score = tf.function(self._score, input_signature=[tf.TensorSpec([None], tf.string)])
    self.step = tf.function(self._step, input_signature=[
        tf.TensorSpec([None], tf.int32), tf.TensorSpec(state_shape, tf.float32)])
    self.initial_state = tf.function(lambda batch_size: {"state": model.zero_state(batch_size)},
                                     input_signature=[tf.TensorSpec([], tf.int32)])
    self.vocabulary = tf.function(lambda: {"words": self.words}, input_signature=[])
    self.level = tf.function(lambda: {"level": tf.constant(self.level_name)},
                             input_signature=[])

  def _token_ids(self, sentences):
    """Raw strings [N] -> ragged int32 ids [N, tokens], tokenized as the model was trained."""
    if self.level_name == "char":
      tokens = tf.strings.unicode_split(sentences, "UTF-8")          # ragged [N, chars]
    else:
      sentences = tf.strings.regex_replace(sentences, WHITESPACE, " ")
      tokens = tf.strings.split(sentences)                           # ragged [N, words]
    return tf.ragged.map_flat_values(self._lookup, tokens)

  def _lookup(self, tokens):
    """Ids of flat string tokens: as they are, else (words) lower-cased, else <unk>."""
    ids = self.table.lookup(tokens)
    if self.level_name == "word":
      lowered = self.table.lookup(tf.strings.lower(tokens, encoding="utf-8"))
      ids = tf.where(ids < 0, lowered, ids)
    return tf.where(ids < 0, self.unk_id, ids)

  def _score(self, sentences):
    ids = self._token_ids(sentences)
    start = tf.fill([tf.shape(sentences)[0], 1], self.start_id)
    if self.level_name == "word":
      ids = tf.concat([ids, start], axis=1)                          # words <eos>
    ids = tf.concat([start, ids], axis=1)                            # <eos> or "\n" first
    num_tokens = ids.row_lengths() - 1
    # One padding column, so the window is never empty (an empty string at char level):
    # inputs and targets are [N, width], the padding masked out of the sum.
    dense = tf.pad(ids.to_tensor(), [[0, 0], [0, 1]])
    inputs, targets = dense[:, :-1], dense[:, 1:]
    logits, _ = self.model(inputs, self.model.zero_state(tf.shape(sentences)[0]))
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, tf.cast(logits, tf.float32))
    nll *= tf.sequence_mask(num_tokens, tf.shape(nll)[1], dtype=tf.float32)
    log_prob = -tf.reduce_sum(nll, axis=1)
    return {"log_prob": log_prob, "num_tokens": num_tokens,
            "perplexity": tf.exp(-log_prob / tf.cast(num_tokens, tf.float32))}

  def _step(self, ids, state):
    logits, state = self.model(ids[:, None], state)
    return {"log_probs": tf.nn.log_softmax(tf.cast(logits[:, 0], tf.float32)), "state": state}


def start_id(vocab, level):
  """The id a sentence is read after: <eos> (words) or "\\n" (chars), else <unk>.

  A text without newlines has neither; <unk> then stands for "no context".
  """
  start = data.EOS if level == "word" else "\n"
  for token in (start, data.UNK):
    if token in vocab:
      return vocab.index(token)
  return 0


def export(model, vocab, export_dir):
  """Writes the SavedModel atomically (an existing export stays until the new one is whole),
  traced on TensorFlow's standard ops whatever the training ran (cuDNN's kernels have no CPU
  kernel), so that it serves on any machine."""
  module = LanguageModelExport(model, vocab)
  signatures = {"serving_default": module.score, "score": module.score, "step": module.step,
                "initial_state": module.initial_state, "vocabulary": module.vocabulary,
                "level": module.level}
  with lstm.standard_ops_only(model):
    return storage.save_model(module, export_dir, signatures)


def read_vocabulary(exported):
  """The tokens of a loaded export, a list in id order."""
  return [token.decode() for token in exported.signatures["vocabulary"]()["words"].numpy()]


def read_level(exported):
  """"word" or "char": how a loaded export reads text (exports without a level are words)."""
  if "level" not in exported.signatures:
    return "word"
  return exported.signatures["level"]()["level"].numpy().decode()


def write_projector(model_dir, model, vocab):
  """Embeddings + vocabulary metadata for TensorBoard's projector tab under MODEL_DIR."""
  model_dir = pathlib.Path(model_dir)
  metadata = "".join(f"{_printable(token)}\n" for token in vocab)
  (model_dir / "metadata.tsv").write_text(metadata, encoding="utf-8")
  checkpoint = tf.train.Checkpoint(embedding=tf.Variable(model.embedding.embeddings))
  path = checkpoint.write(str(model_dir / "projector" / "embedding.ckpt"))
  config = projector.ProjectorConfig(model_checkpoint_path=path)
  embedding = config.embeddings.add()
  embedding.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
  embedding.metadata_path = "metadata.tsv"
  projector.visualize_embeddings(str(model_dir), config)


def _printable(token):
  """A token as one metadata line: a space or a control character (a newline, a tab) as an
  escape, so the file keeps one line per id."""
  if token == " ":
    return "<space>"
  return token if token.isprintable() else token.encode("unicode_escape").decode("ascii")
