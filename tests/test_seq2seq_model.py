"""seq2seq's model and decoders: shapes, masks, the step against the teacher-forced pass, beam
search against exhaustive search, checkpoints, and a few steps of training."""
import dataclasses
import itertools
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_independent_draws
from seq2seq import configs, data, decoding, metrics
from seq2seq.model import Seq2Seq, count_parameters

SOURCE = np.int32([[4, 5, 6, 7], [8, 9, 0, 0], [5, 0, 0, 0]])         # [PAD] = 0 on the right
DECODER_INPUT = np.int32([[2, 4, 5, 4, 5], [2, 5, 0, 0, 0], [2, 5, 4, 0, 0]])
VARIANTS = list(itertools.product(configs.ATTENTIONS, configs.CELLS))


def _model(attention="bahdanau", cell="lstm", target_vocab=12, seed=0, **fields):
  keras.utils.set_random_seed(seed)
  config = dataclasses.replace(configs.TestConfig(), attention=attention, cell=cell, **fields)
  model = Seq2Seq(config, source_vocab_size=10, target_vocab_size=target_vocab)
  model((SOURCE, DECODER_INPUT))
  return model


@pytest.mark.parametrize("attention,cell", VARIANTS)
def test_shapes_and_attention_over_the_real_source_only(attention, cell):
  model = _model(attention, cell)
  logits, weights = model((SOURCE, DECODER_INPUT))
  assert logits.shape == (3, 5, 12)
  encoder_outputs, state, source_mask = model.encode(SOURCE)
  assert encoder_outputs.shape == (3, 4, 16) and len(state) == (2 if cell == "lstm" else 1)
  assert all(tensor.shape == (3, 16) for tensor in state)
  if attention == "none":
    assert weights is None
    return
  assert weights.shape == (3, 5, 4)
  np.testing.assert_allclose(tf.reduce_sum(weights, -1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(tf.boolean_mask(weights[1], ~source_mask[1], axis=1), 0.0)


def test_every_weight_starts_from_its_own_draws():
  # spa-eng keeps 5,000 words a side: two embeddings of one shape
  assert_independent_draws(_model(target_vocab=10))


def test_parameter_count_of_the_test_config():
  model = _model(target_vocab=24)
  embedding, units, source_vocab, target_vocab = 8, 16, 10, 24
  lstm = 4 * units * (embedding + units + 1)
  assert count_parameters(model) == (
      source_vocab * embedding + target_vocab * embedding   # embeddings
      + 2 * lstm                                          # the bidirectional encoder
      + 2 * (2 * units * units + units)                   # bridges for h and c
      + lstm                                              # the decoder
      + 2 * units * units + units                         # Bahdanau's W, U and v
      + 2 * units * units + units                         # W_c
      + units * target_vocab + target_vocab) == 7592      # the output layer


@pytest.mark.parametrize("attention,cell", [("bahdanau", "lstm"), ("luong", "gru"),
                                            ("none", "lstm")])
def test_padding_changes_nothing_at_real_positions(attention, cell):
  model = _model(attention, cell)
  alone, alone_weights = model((SOURCE[1:2, :2], DECODER_INPUT[1:2, :2]))
  batched, batched_weights = model((SOURCE, DECODER_INPUT))
  np.testing.assert_allclose(batched[1, :2], alone[0], atol=1e-5)
  if attention != "none":
    np.testing.assert_allclose(batched_weights[1, :2, :2], alone_weights[0], atol=1e-6)


@pytest.mark.parametrize("attention,cell", VARIANTS)
def test_decode_step_gives_the_teacher_forced_numbers(attention, cell):
  model = _model(attention, cell)
  logits, weights = model((SOURCE, DECODER_INPUT))
  encoder_outputs, state, source_mask = model.encode(SOURCE)
  for t in range(DECODER_INPUT.shape[1]):
    step_logits, state, step_weights = model.decode_step(DECODER_INPUT[:, t], state,
                                                         encoder_outputs, source_mask)
    real = DECODER_INPUT[:, t] != data.PAD_ID
    np.testing.assert_allclose(step_logits[real], logits[:, t][real], atol=1e-5)
    if attention != "none":
      np.testing.assert_allclose(step_weights[real], weights[:, t][real], atol=1e-5)


@pytest.fixture(scope="module")
def trained():
  """The test config after 80 Adam steps on its reversal task (loss 3.2 -> 0.9: partly
  trained, so its outputs are neither uniform nor certain); what training showed on the way."""
  config = configs.TestConfig()
  splits = data.load(config)
  source_vocab, target_vocab = data.vocabularies(splits["train"], config.level,
                                                 config.vocab_size)
  batches = list(data.batches(data.encode(splits["train"], source_vocab, target_vocab),
                              config.batch_size, seed=0))
  keras.utils.set_random_seed(0)
  model = Seq2Seq(config, len(source_vocab), len(target_vocab))
  optimizer = keras.optimizers.Adam(config.learning_rate)

  def loss_of(batch, training=False):
    (source, decoder_input), decoder_target = batch
    nll, tokens = metrics.token_nll(model((source, decoder_input), training=training)[0],
                                    decoder_target)
    return nll / tf.cast(tokens, tf.float32)

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 3)
  def train_step(source, decoder_input, decoder_target):
    with tf.GradientTape() as tape:
      loss = loss_of(((source, decoder_input), decoder_target), training=True)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))

  losses = [np.mean([loss_of(batch) for batch in batches])]
  start = [variable.numpy() for variable in model.trainable_variables]
  for step in range(80):
    (source, decoder_input), decoder_target = batches[step % len(batches)]
    train_step(source, decoder_input, decoder_target)
    if step == 0:
      unchanged = [variable.name for variable, value in zip(model.trainable_variables, start)
                   if np.array_equal(variable.numpy(), value)]
  losses.append(np.mean([loss_of(batch) for batch in batches]))
  test_sources = [source_vocab.encode(source) for source, _ in splits["test"]]
  return types.SimpleNamespace(model=model, losses=losses, unchanged=unchanged,
                               test_sources=test_sources)


def test_a_few_dozen_steps_lower_the_loss_and_one_changes_every_weight(trained):
  assert not trained.unchanged
  assert trained.losses[1] < 0.6 * trained.losses[0]


def _exhaustive(model, source, max_length, alpha):
  """Every hypothesis (decoding's module docstring) scored by the teacher-forced pass."""
  allowed = [data.UNK_ID] + list(range(len(data.RESERVED), model.output_layer.units))
  hypotheses = [list(h) for n in range(max_length + 1)
                for h in itertools.product(allowed, repeat=n)]
  inputs = np.zeros([len(hypotheses), max_length + 1], np.int32)
  targets = np.zeros_like(inputs)
  for row, h in enumerate(hypotheses):
    inputs[row, :len(h) + 1] = [data.START_ID] + h
    targets[row, :len(h) + 1] = h + [data.END_ID]
  logits, _ = model((np.repeat(source[None], len(hypotheses), 0), inputs))
  log_probs = tf.gather(tf.nn.log_softmax(logits), targets, batch_dims=2)
  totals = tf.reduce_sum(tf.where(targets > 0, log_probs, 0.0), axis=1)
  scores = totals / decoding.length_penalty_of(np.count_nonzero(targets, 1), alpha)
  return hypotheses, scores.numpy()


def test_beam_search_as_wide_as_the_hypotheses_finds_the_best_one(trained):
  model, max_length = trained.model, 3
  sources = [source for source in trained.test_sources if len(source) <= 3][:4]
  bests, greedy_misses = [], 0
  for source, alpha in itertools.product(sources, (0.0, 1.0)):
    hypotheses, scores = _exhaustive(model, source, max_length, alpha)
    assert len(hypotheses) == 1 + 21 + 21**2 + 21**3      # [UNK] and 20 symbols, then [END]
    best = int(np.argmax(scores))
    assert np.sort(scores)[-1] - np.sort(scores)[-2] > 1e-2  # a clear winner to find
    [found] = decoding.beam_search(model, source[None], beam_width=len(hypotheses),
                                   max_length=max_length, length_penalty=alpha)
    assert found.ids.tolist() == hypotheses[best]
    assert found.score == pytest.approx(scores[best], abs=1e-4)
    bests.append(hypotheses[best])
    [greedy] = decoding.greedy(model, source[None], max_length)
    greedy_misses += greedy.ids.tolist() != hypotheses[best]
  # The case is not trivial: some best hypotheses are long, and greedy misses one.
  assert max(map(len, bests)) >= 2 and greedy_misses >= 1


def test_beam_of_one_is_greedy_and_beams_are_batched(trained):
  model, sources = trained.model, trained.test_sources[:6]
  batch = np.zeros([len(sources), max(map(len, sources))], np.int32)
  for row, source in enumerate(sources):
    batch[row, :len(source)] = source
  assert (batch == data.PAD_ID).any()
  greedy = decoding.greedy(model, batch, max_length=8)
  for beam, one in zip(decoding.beam_search(model, batch, 1, 8), greedy):
    assert beam.ids.tolist() == one.ids.tolist() and beam.score == pytest.approx(one.score)
    np.testing.assert_allclose(beam.alignment, one.alignment, atol=1e-6)
  batched = decoding.beam_search(model, batch, 3, 8, length_penalty=0.6)
  assert min(len(translation.ids) for translation in batched) >= 1
  for source, translation in zip(sources, batched):
    [alone] = decoding.beam_search(model, source[None], 3, 8, 0.6)
    assert translation.ids.tolist() == alone.ids.tolist()
    assert translation.score == pytest.approx(alone.score, abs=1e-4)
    assert translation.alignment.shape == (len(alone.ids) + 1, len(source))  # [END]'s too
    np.testing.assert_allclose(translation.alignment, alone.alignment, atol=1e-5)


def test_decoders_run_in_a_graph_of_unknown_shapes_as_an_export_would(trained):
  model = trained.model
  spec = [tf.TensorSpec([None, None], tf.int32)]
  greedy = tf.function(lambda source: decoding.greedy_search(model, source, 6),
                       input_signature=spec)
  beam = tf.function(lambda source: decoding.beam_search_tensors(model, source, 3, 6, 0.6),
                     input_signature=spec)
  for graph, eager in ((greedy(SOURCE), decoding.greedy_search(model, SOURCE, 6)),
                       (beam(SOURCE), decoding.beam_search_tensors(model, SOURCE, 3, 6, 0.6))):
    for graph_tensor, eager_tensor in zip(graph, eager):
      np.testing.assert_allclose(graph_tensor, eager_tensor, atol=1e-5)


def test_a_checkpoint_restores_the_same_translations(tmp_path):
  model = _model("luong", "gru")
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
  restored = _model("luong", "gru", seed=1)
  assert not np.allclose(restored((SOURCE, DECODER_INPUT))[0], model((SOURCE, DECODER_INPUT))[0])
  tf.train.Checkpoint(model=restored).read(path).assert_existing_objects_matched()
  np.testing.assert_allclose(restored((SOURCE, DECODER_INPUT))[0],
                             model((SOURCE, DECODER_INPUT))[0], atol=1e-6)
