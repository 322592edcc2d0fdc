"""Greedy and beam-search decoding of a Seq2Seq model, batched.

Every hypothesis ends with [END]: after `max_length` tokens [END] is the only choice (as
fairseq forces its EOS), so a hypothesis is y_1 .. y_n [END] with n <= max_length. [PAD] and
[START] are never chosen. A hypothesis' score is

    sum over its n + 1 tokens of log p(y_t | y_<t, x)  /  lp,    lp = ((5 + n + 1) / 6) ** alpha

the log-probabilities from a softmax over the whole target vocabulary, lp the length penalty of
Wu et al. 2016 (GNMT, https://arxiv.org/abs/1609.08144; alpha = `length_penalty`, 0: none).

Beam search keeps `beam_width` hypotheses per sentence, ranked by that score at every step (a
finished hypothesis stays in the beam with its score, against the live ones' scores so far, as
TensorFlow Addons' BeamSearchDecoder ranks them). With a beam as wide as the number of
hypotheses it is exhaustive, and finds the best-scoring one (tested); with beam 1 it is greedy.

`greedy_search` and `beam_search_tensors` are TensorFlow code that also runs in a tf.function
(autograph turns their loops into while loops), so an export can decode in its graph;
`greedy` and `beam_search` turn their tensors into one Translation per sentence.
"""
import typing

import numpy as np
import tensorflow as tf

from seq2seq import data


class Translation(typing.NamedTuple):
  """One decoded sentence."""
  ids: np.ndarray        # int32 [output_len]: the tokens, without [END]
  score: float           # the scoring rule of the module docstring ([END] included)
  # [output_len + 1, src_len] attention weights ([END]'s row last), or None
  alignment: typing.Optional[np.ndarray]


def greedy(model, source, max_length):
  """The most probable token at each step, for each sentence of `source` [batch, src_len]."""
  ids, scores, attention = greedy_search(model, tf.constant(source, tf.int32), max_length)
  return _translations(source, ids, scores, attention)


def beam_search(model, source, beam_width, max_length, length_penalty=0.0):
  """The best of `beam_width` hypotheses kept per sentence of `source` [batch, src_len]."""
  ids, scores, attention = beam_search_tensors(model, tf.constant(source, tf.int32),
                                               beam_width, max_length, length_penalty)
  return _translations(source, ids, scores, attention)


def _step_log_probs(logits, last):
  """log p of each token [batch, vocab]; [PAD] and [START] impossible, only [END] at `last`."""
  log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
  vocab = tf.shape(logits)[-1]
  banned = tf.one_hot(data.PAD_ID, vocab, on_value=True, off_value=False)
  banned |= tf.one_hot(data.START_ID, vocab, on_value=True, off_value=False)
  banned |= tf.logical_and(last, tf.not_equal(tf.range(vocab), data.END_ID))
  return tf.where(banned, -np.inf, log_probs)


def length_penalty_of(length, alpha):
  """GNMT's ((5 + length) / 6) ** alpha, `length` counting [END]."""
  return ((5.0 + tf.cast(length, tf.float32)) / 6.0) ** alpha


def greedy_search(model, source, max_length):
  """Greedy decoding as tensors: ids int32 [batch, steps] (then [PAD] after [END]), scores
  [batch] (summed log-probabilities) and attention [batch, steps, src_len] (None without
  attention); steps <= max_length + 1."""
  encoder_outputs, state, source_mask = model.encode(source)
  batch = tf.shape(source)[0]
  tokens = tf.fill([batch], data.START_ID)
  done = tf.zeros([batch], tf.bool)
  scores = tf.zeros([batch])
  all_ids = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
  all_weights = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
  for t in tf.range(max_length + 1):
    logits, state, weights = model.decode_step(tokens, state, encoder_outputs, source_mask)
    log_probs = _step_log_probs(logits, t == max_length)
    tokens = tf.where(done, data.PAD_ID, tf.argmax(log_probs, -1, output_type=tf.int32))
    scores += tf.where(done, 0.0, tf.gather(log_probs, tokens, batch_dims=1))
    done |= tf.equal(tokens, data.END_ID)
    all_ids = all_ids.write(t, tokens)
    if weights is not None:
      all_weights = all_weights.write(t, weights)
    if tf.reduce_all(done):
      break
  attention = None
  if model.attention_type != "none":
    attention = tf.transpose(all_weights.stack(), [1, 0, 2])
  return tf.transpose(all_ids.stack()), scores, attention


def beam_search_tensors(model, source, beam_width, max_length, length_penalty=0.0):
  """Beam search as tensors: the best hypothesis' ids int32 [batch, max_length + 1] ([PAD]
  after [END]), its score [batch] (module docstring) and attention [batch, max_length + 1,
  src_len] (None without attention)."""
  encoder_outputs, state, source_mask = model.encode(source)
  (batch, source_length), steps = _shape(source), max_length + 1
  # Row b * beam_width + k holds sentence b's hypothesis k.
  encoder_outputs = tf.repeat(encoder_outputs, beam_width, axis=0)
  source_mask = tf.repeat(source_mask, beam_width, axis=0)
  state = [tf.repeat(tensor, beam_width, axis=0) for tensor in state]
  tokens = tf.fill([batch * beam_width], data.START_ID)
  # Only hypothesis 0 is alive at first, so the first step's best tokens go to distinct beams.
  log_probs = tf.tile([[0.0] + [-np.inf] * (beam_width - 1)], [batch, 1])    # [batch, beam]
  lengths = tf.zeros([batch, beam_width], tf.int32)
  done = tf.zeros([batch, beam_width], tf.bool)
  ids = tf.zeros([batch, beam_width, steps], tf.int32)
  attention = tf.zeros([batch, beam_width, steps, source_length])
  for t in tf.range(steps):
    logits, state, weights = model.decode_step(tokens, state, encoder_outputs, source_mask)
    vocab = logits.shape[-1]
    step = tf.reshape(_step_log_probs(logits, t == max_length), [batch, beam_width, vocab])
    # A finished hypothesis goes on with [PAD] at no cost, so it keeps its score and place.
    carry_on = tf.one_hot(data.PAD_ID, vocab, on_value=0.0, off_value=-np.inf)
    total = log_probs[..., None] + tf.where(done[..., None], carry_on, step)  # [batch, beam, V]
    new_lengths = lengths + tf.cast(~done, tf.int32)
    ranked = total / length_penalty_of(new_lengths, length_penalty)[..., None]
    _, chosen = tf.math.top_k(tf.reshape(ranked, [batch, -1]), beam_width)   # [batch, beam]
    parents, tokens = chosen // vocab, chosen % vocab
    log_probs = tf.gather(tf.reshape(total, [batch, -1]), chosen, batch_dims=1)
    lengths = tf.gather(new_lengths, parents, batch_dims=1)
    done = tf.gather(done, parents, batch_dims=1) | tf.equal(tokens, data.END_ID)
    now = tf.equal(tf.range(steps), t)                                        # [steps]
    ids = tf.where(now, tokens[..., None], tf.gather(ids, parents, batch_dims=1))
    if weights is not None:
      weights = tf.gather(tf.reshape(weights, [batch, beam_width, -1]), parents, batch_dims=1)
      attention = tf.where(now[:, None], weights[:, :, None],
                           tf.gather(attention, parents, batch_dims=1))
    rows = tf.reshape(parents + beam_width * tf.range(batch)[:, None], [-1])
    state = [tf.gather(tensor, rows) for tensor in state]
    tokens = tf.reshape(tokens, [-1])
    if tf.reduce_all(done):
      break
  scores = log_probs / length_penalty_of(lengths, length_penalty)
  best = tf.argmax(scores, axis=1, output_type=tf.int32)
  best_attention = None if model.attention_type == "none" else tf.gather(attention, best,
                                                                         batch_dims=1)
  return tf.gather(ids, best, batch_dims=1), tf.gather(scores, best, batch_dims=1), \
      best_attention


def _shape(tensor):
  """Its static dimensions where known, else dynamic ones: a tf.function's loop variables must
  keep the static shape they start with."""
  dynamic = tf.shape(tensor)
  return [dynamic[i] if size is None else size for i, size in enumerate(tensor.shape)]


def _translations(source, ids, scores, attention):
  """One Translation per row: ids cut at [END], alignment cut after [END]'s row and to the
  source's own length."""
  source, ids, scores = np.asarray(source), ids.numpy(), scores.numpy()
  attention = None if attention is None else attention.numpy()
  translations = []
  for row, row_ids in enumerate(ids):
    length = int(np.argmax(row_ids == data.END_ID))  # every hypothesis has an [END]
    source_length = int(np.count_nonzero(source[row] != data.PAD_ID))
    alignment = None if attention is None else attention[row, :length + 1, :source_length]
    translations.append(Translation(row_ids[:length], float(scores[row]), alignment))
  return translations
