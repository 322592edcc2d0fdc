"""The SavedModel that carries the vocabulary, and the embeddings for TensorBoard's projector.

Signatures (all usable with TensorFlow alone, `tf.saved_model.load(MODEL_DIR/export)`):
  score(sentences: string [N]) -> log_prob, num_tokens, perplexity  (also serving_default)
      Each sentence is lower-cased and split on spaces; unknown words become <unk>. It is
      scored as a PTB line: from the zero state after an <eos>, up to and including its <eos>.
  step(ids: int32 [B], state: float32 [layers, 2, B, hidden]) -> log_probs [B, vocab], state
      One word per stream, for streaming generation.
  initial_state(batch_size: int32 []) -> state (zeros);  vocabulary() -> words: string [vocab]
"""
import pathlib

import tensorflow as tf
from tensorboard.plugins import projector

from common import storage
from ptb.data import EOS, UNK


class LanguageModelExport(tf.Module):
  """Wraps a trained PTBModel and its vocabulary in serving signatures."""

  def __init__(self, model, vocab):
    super().__init__()
    self.model = model
    self.words = tf.constant(vocab)
    self.eos_id = vocab.index(EOS)
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(self.words, tf.range(len(vocab), dtype=tf.int32)),
        default_value=vocab.index(UNK) if UNK in vocab else 0)
    state_shape = [model.config.num_layers, 2, None, model.config.hidden_size]
    self.score = tf.function(self._score, input_signature=[tf.TensorSpec([None], tf.string)])
    self.step = tf.function(self._step, input_signature=[
        tf.TensorSpec([None], tf.int32), tf.TensorSpec(state_shape, tf.float32)])
    self.initial_state = tf.function(lambda batch_size: {"state": model.zero_state(batch_size)},
                                     input_signature=[tf.TensorSpec([], tf.int32)])
    self.vocabulary = tf.function(lambda: {"words": self.words}, input_signature=[])

  def _score(self, sentences):
    words = tf.strings.split(tf.strings.lower(sentences))            # ragged [N, words]
    ids = tf.ragged.map_flat_values(self.table.lookup, words)
    eos = tf.fill([tf.shape(sentences)[0], 1], self.eos_id)
    ids = tf.concat([eos, ids, eos], axis=1)                          # <eos> words <eos>
    inputs, targets = ids[:, :-1], ids[:, 1:]
    num_tokens = targets.row_lengths()
    logits, _ = self.model(inputs.to_tensor(), self.model.zero_state(tf.shape(sentences)[0]))
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(targets.to_tensor(),
                                                         tf.cast(logits, tf.float32))
    nll *= tf.sequence_mask(num_tokens, tf.shape(nll)[1], dtype=tf.float32)
    log_prob = -tf.reduce_sum(nll, axis=1)
    return {"log_prob": log_prob, "num_tokens": num_tokens,
            "perplexity": tf.exp(-log_prob / tf.cast(num_tokens, tf.float32))}

  def _step(self, ids, state):
    logits, state = self.model(ids[:, None], state)
    return {"log_probs": tf.nn.log_softmax(tf.cast(logits[:, 0], tf.float32)), "state": state}


def export(model, vocab, export_dir):
  """Writes the SavedModel atomically (an existing export stays until the new one is whole)."""
  module = LanguageModelExport(model, vocab)
  signatures = {"serving_default": module.score, "score": module.score, "step": module.step,
                "initial_state": module.initial_state, "vocabulary": module.vocabulary}
  return storage.save_model(module, export_dir, signatures)


def write_projector(model_dir, model, vocab):
  """Embeddings + vocabulary metadata for TensorBoard's projector tab under MODEL_DIR."""
  model_dir = pathlib.Path(model_dir)
  (model_dir / "metadata.tsv").write_text("".join(f"{word}\n" for word in vocab))
  checkpoint = tf.train.Checkpoint(embedding=tf.Variable(model.embedding.embeddings))
  path = checkpoint.write(str(model_dir / "projector" / "embedding.ckpt"))
  config = projector.ProjectorConfig(model_checkpoint_path=path)
  embedding = config.embeddings.add()
  embedding.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
  embedding.metadata_path = "metadata.tsv"
  projector.visualize_embeddings(str(model_dir), config)
