"""The encoder-decoder with attention, in Keras layers.

    source ids [batch, src_len] -> embedding -> bidirectional RNN (forward + backward summed)
        -> encoder outputs [batch, src_len, units]; final states -> Dense(tanh) -> decoder state
    decoder input ids [batch, tgt_len] -> embedding -> RNN from that state -> h [batch, tgt_len,
        units] -> attention over the encoder outputs, h the queries -> context c -> tanh(W_c [c;
        h]) -> Dense -> logits [batch, tgt_len, target vocab]

`config.attention` picks the score of h_t against encoder output h_s:
  bahdanau  v^T tanh(W h_t + U h_s) (Bahdanau, Cho & Bengio 2015, https://arxiv.org/abs/1409.0473):
            W and U are Dense layers, v is keras.layers.AdditiveAttention's scale.
  luong     h_t^T h_s (Luong, Pham & Manning 2015, https://arxiv.org/abs/1508.04025, "dot"):
            keras.layers.Attention(score_mode="dot").
  none      no attention: the decoder knows the source only through its initial state (Cho et
            al. 2014; Sutskever et al. 2014), and the logits come from h directly.

Attention follows the RNN (the current TensorFlow tutorial's order; Luong's attentional hidden
state tanh(W_c [c_t; h_t]), without his input feeding): the decoder RNN reads the whole target
in one call and attention then covers every step at once, so teacher-forced training is one
parallel pass, not a Python loop of steps. Bahdanau's decoder computes c_t from the previous
state and feeds it into the RNN at step t (Luong's input feeding, h~_t-1 into step t), which
makes every step wait for the one before. `decode_step` runs the same layers on one token and
gives the teacher-forced call's numbers, step by step (tested).

Encoder outputs are the forward and backward outputs summed (merge_mode="sum", the tutorial's):
they keep `units` features, so Luong's dot score compares them with the decoder's h directly.
The decoder's initial state is tanh(W_s [forward final; backward final]), one Dense per state
tensor (h; and c for an LSTM): Bahdanau's s_0 = tanh(W_s h_1-backward), given both directions.
A learned bridge, not a sum, because without attention it carries all the decoder knows.

Masks: [PAD] = 0 is masked in both RNNs (the backward RNN starts at each source's last real
token), and padded source positions get no attention; padding changes no real position's
numbers (tested).
"""
import keras
import tensorflow as tf

from seq2seq import data
from seq2seq.configs import ATTENTIONS, CELLS  # noqa: F401  the choices, for callers


class Seq2Seq(keras.layers.Layer):
  """Encoder, decoder and attention of `config`, over the two vocabularies' sizes.

  A Layer rather than a keras.Model, as ptb's: we never `fit` it, and it checkpoints with
  tf.train.Checkpoint(model=...) all the same.
  """

  def __init__(self, config, source_vocab_size, target_vocab_size, **kwargs):
    super().__init__(**kwargs)
    self._allow_non_tensor_positional_args = True  # numpy ids are fine
    self.config = config
    self.attention_type = config.attention
    units = config.units
    recurrent = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[config.cell]
    # Embeddings start N(0, 1) (PyTorch's nn.Embedding; ptb's char config), not Keras' uniform
    # +-0.05: with inputs that small the RNN outputs, and so tanh(W_c [c; h]), start tiny and
    # spa-eng learns slowly (mean loss of steps 200-300: 3.66 against 5.2-5.3, measured).
    # One initializer each: an unseeded Keras 3 initializer repeats its values for one shape.
    self.source_embedding = keras.layers.Embedding(
        source_vocab_size, config.embedding_size,
        embeddings_initializer=keras.initializers.RandomNormal(0.0, 1.0),
        mask_zero=True, name="source_embedding")
    self.target_embedding = keras.layers.Embedding(
        target_vocab_size, config.embedding_size,
        embeddings_initializer=keras.initializers.RandomNormal(0.0, 1.0),
        mask_zero=True, name="target_embedding")
    self.dropout = keras.layers.Dropout(config.dropout)
    self.encoder = keras.layers.Bidirectional(
        recurrent(units, return_sequences=True, return_state=True), merge_mode="sum",
        name="encoder")
    # One bridge per state tensor; attributes, not a list: tf.train.Checkpoint does not
    # follow Keras 3 lists.
    self.num_states = 2 if config.cell == "lstm" else 1
    for i in range(self.num_states):
      setattr(self, f"bridge_{i}",
              keras.layers.Dense(units, activation="tanh", name=f"bridge_{i}"))
    self.decoder = recurrent(units, return_sequences=True, return_state=True, name="decoder")
    if config.attention == "bahdanau":
      self.query_projection = keras.layers.Dense(units, use_bias=False, name="W")
      self.key_projection = keras.layers.Dense(units, use_bias=False, name="U")
      self.attention = keras.layers.AdditiveAttention(name="attention")
    elif config.attention == "luong":
      self.attention = keras.layers.Attention(score_mode="dot", name="attention")
    if config.attention != "none":
      self.attentional = keras.layers.Dense(units, activation="tanh", name="W_c")
    self.output_layer = keras.layers.Dense(target_vocab_size, name="logits")

  def encode(self, source, training=False):
    """Reads the source.

    Args:
      source: int32 ids [batch, src_len], padded with [PAD].

    Returns:
      encoder outputs [batch, src_len, units], the decoder's initial state (a list: [h], or
      [h, c] for an LSTM, each [batch, units]), and the source mask, bool [batch, src_len].
    """
    source_mask = tf.not_equal(source, data.PAD_ID)
    embedded = self.dropout(self.source_embedding(source), training=training)
    outputs, *final = self.encoder(embedded, mask=source_mask, training=training)
    forward, backward = final[:self.num_states], final[self.num_states:]
    state = [getattr(self, f"bridge_{i}")(tf.concat([f, b], axis=-1))
             for i, (f, b) in enumerate(zip(forward, backward))]
    return outputs, state, source_mask

  def call(self, inputs, training=False):
    """The teacher-forced pass: (source [batch, src_len], decoder_input [batch, tgt_len]) ->
    logits [batch, tgt_len, target vocab], attention weights [batch, tgt_len, src_len] (None
    without attention)."""
    source, decoder_input = inputs
    encoder_outputs, state, source_mask = self.encode(source, training)
    logits, _, attention = self.decode(decoder_input, state, encoder_outputs, source_mask,
                                       training)
    return logits, attention

  def decode(self, decoder_input, state, encoder_outputs, source_mask, training=False):
    """The decoder over `decoder_input` [batch, tgt_len] from `state`: (logits [batch,
    tgt_len, vocab], final state, attention [batch, tgt_len, src_len] or None)."""
    target_mask = tf.not_equal(decoder_input, data.PAD_ID)
    embedded = self.dropout(self.target_embedding(decoder_input), training=training)
    outputs, *state = self.decoder(embedded, initial_state=state, mask=target_mask,
                                   training=training)                 # [batch, tgt_len, units]
    if self.attention_type == "none":
      return self.output_layer(self.dropout(outputs, training=training)), state, None
    context, weights = self._attend(outputs, encoder_outputs, target_mask, source_mask)
    hidden = self.attentional(tf.concat([context, outputs], axis=-1))  # Luong's eq. 5
    return self.output_layer(self.dropout(hidden, training=training)), state, weights

  def _attend(self, queries, encoder_outputs, query_mask, source_mask):
    """Context [batch, tgt_len, units] and weights [batch, tgt_len, src_len]."""
    masks = [query_mask, source_mask]
    if self.attention_type == "bahdanau":
      return self.attention([self.query_projection(queries), encoder_outputs,
                             self.key_projection(encoder_outputs)],
                            mask=masks, return_attention_scores=True)
    return self.attention([queries, encoder_outputs], mask=masks, return_attention_scores=True)

  def decode_step(self, token_ids, state, encoder_outputs, source_mask):
    """One step of inference: the same layers as `call`, on one token per row.

    Args:
      token_ids: int32 [batch], the previous output ([START] first).
      state: the decoder state, as `encode` returns it.
      encoder_outputs, source_mask: as `encode` returns them.

    Returns:
      logits [batch, vocab], the new state, attention weights [batch, src_len] (or None).
    """
    logits, state, attention = self.decode(token_ids[:, None], state, encoder_outputs,
                                           source_mask)
    return logits[:, 0], state, None if attention is None else attention[:, 0]


def count_parameters(model):
  """The number of trainable weights (the model must have been called once)."""
  return sum(int(tf.size(variable)) for variable in model.trainable_variables)
