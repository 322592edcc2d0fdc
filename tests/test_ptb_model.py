"""The PTB model and its training step: shapes, parameters, carried state, loss, evaluation."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from common import bfloat16
from conftest import assert_independent_draws
from ptb import configs, evaluation, train
from ptb.fast_loss import token_nll
from ptb.model import PTBModel

TINY = dataclasses.replace(configs.TestConfig(), init_scale=0.5, vocab_size=50, hidden_size=8,
                           num_layers=2, num_steps=3, batch_size=4, max_grad_norm=1e9)


def build(config, seed=0):
  keras.utils.set_random_seed(seed)
  model = PTBModel(config)
  model.create_variables()
  return model


def test_small_config_parameter_count_matches_the_hand_count():
  # embedding 10000x200 + 2 x LSTM (400x800 + 800) + softmax 200x10000 + 10000
  assert build(configs.SmallConfig()).count_params() == 4_651_600


def test_shapes_and_initialisation():
  model = build(TINY)
  logits, state = model(tf.zeros([4, 3], tf.int32), model.zero_state(4))
  assert logits.shape == (4, 3, 50) and state.shape == (2, 2, 4, 8)
  for variable in model.trainable_variables:
    values = variable.numpy()
    if variable.path.endswith("lstm_0/bias") or variable.path.endswith("lstm_1/bias"):
      assert not values.any()  # forget bias 0, not Keras' 1
    else:
      assert np.abs(values).max() <= TINY.init_scale and values.std() > 0


@pytest.mark.parametrize("lstm", ["fast", "keras"])
def test_every_weight_starts_from_its_own_draws(lstm):
  # the tutorial draws each variable on its own; hidden = input size, so the two kernels of a
  # layer (and of both layers) have one shape, as in every word config
  assert_independent_draws(build(dataclasses.replace(TINY, lstm=lstm)))
  model = build(dataclasses.replace(configs.CharConfig(), vocab_size=66, hidden_size=64))
  assert_independent_draws(model)


def test_the_char_config_starts_the_embedding_at_unit_scale_and_the_rest_as_the_tutorial():
  config = dataclasses.replace(configs.CharConfig(), vocab_size=66, hidden_size=64)
  assert config.embedding_init == "normal"
  model = build(config)
  embedding = model.embedding.embeddings.numpy()
  assert 0.9 < embedding.std() < 1.1 and abs(embedding.mean()) < 0.05
  for variable in model.trainable_variables:
    if variable is not model.embedding.embeddings and not variable.path.endswith("bias"):
      assert np.abs(variable.numpy()).max() <= config.init_scale
  # the word configs (and char_large, as measured) keep the tutorial's uniform embedding;
  # a flag can give it to any config
  assert all(configs.CONFIGS[name]().embedding_init == "uniform"
             for name in ("small", "medium", "large", "char_large"))
  uniform = build(dataclasses.replace(TINY, embedding_init="uniform"))
  assert np.abs(uniform.embedding.embeddings.numpy()).max() <= TINY.init_scale


def test_carried_state_equals_one_long_window():
  model = build(TINY)
  ids = tf.random.uniform([4, 6], 0, 50, tf.int32, seed=1)
  whole, _ = model(ids, model.zero_state(4))
  first, state = model(ids[:, :3], model.zero_state(4))
  second, _ = model(ids[:, 3:], state)
  np.testing.assert_allclose(tf.concat([first, second], 1), whole, atol=1e-5)
  fresh, _ = model(ids[:, 3:], model.zero_state(4))
  assert np.abs(fresh - second).max() > 1e-2  # the state really changes the next window


def test_gradient_stops_at_the_window_edge():
  model = build(TINY)
  train_step, _ = train.make_steps(model, TINY)
  first = tf.constant([[1, 2, 3]] * 4)   # words 1-3 appear only in the first window
  second = tf.constant([[4, 5, 6]] * 4)
  _, state = train_step(first, second, model.zero_state(4), tf.constant(0.0), tf.constant([0, 0]))
  before = model.embedding.embeddings.numpy()
  train_step(second, second, state, tf.constant(1.0), tf.constant([0, 0]))
  after = model.embedding.embeddings.numpy()
  np.testing.assert_array_equal(after[1:4], before[1:4])  # no gradient reached window one
  assert np.abs(after[4:7] - before[4:7]).max() > 0


def test_loss_is_summed_over_time_and_averaged_over_the_batch():
  model = build(TINY)
  inputs = tf.random.uniform([4, 3], 0, 50, tf.int32, seed=2)
  targets = tf.random.uniform([4, 3], 0, 50, tf.int32, seed=3)
  with tf.GradientTape() as tape:
    logits, _ = model(inputs, model.zero_state(4))
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)
    reference = tf.reduce_mean(tf.reduce_sum(per_token, axis=1))  # sum over T, mean over B
  grads = tape.gradient(reference, model.trainable_variables)
  expected = [v.numpy() - tf.convert_to_tensor(g).numpy()
              for v, g in zip(model.trainable_variables, grads)]
  train_step, _ = train.make_steps(model, TINY)
  nll, _ = train_step(inputs, targets, model.zero_state(4), tf.constant(1.0), tf.constant([0, 0]))
  np.testing.assert_allclose(nll, tf.reduce_sum(per_token), rtol=1e-5)
  for variable, value in zip(model.trainable_variables, expected):
    np.testing.assert_allclose(variable.numpy(), value, atol=1e-5, err_msg=variable.path)


def test_a_few_dozen_steps_lower_the_loss():
  config = dataclasses.replace(TINY, max_grad_norm=5.0, init_scale=0.1, hidden_size=32)
  model = build(config)
  train_step, _ = train.make_steps(model, config)
  ids = np.tile(np.arange(10), 40)  # a stream the model can learn: 0 1 2 ... 9 0 1 ...
  inputs, targets = train.data.windows(ids, 4, 3)
  state, losses = model.zero_state(4), []
  for x, y in zip(inputs, targets):
    nll, state = train_step(x, y, state, tf.constant(1.0), tf.constant([0, 0]))
    losses.append(float(nll) / y.size)
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])  # from ln(50) = 3.9 to < 3.1


def test_every_trainable_variable_changes_in_one_step():
  model = build(TINY)
  before = [v.numpy().copy() for v in model.trainable_variables]
  train_step, _ = train.make_steps(model, TINY)
  ids = tf.constant([[1, 2, 3]] * 4)
  train_step(ids, ids, model.zero_state(4), tf.constant(1.0), tf.constant([0, 0]))
  for variable, old in zip(model.trainable_variables, before):
    assert np.abs(variable.numpy() - old).max() > 0, variable.path


def test_dropout_follows_the_seed_and_is_off_in_evaluation():
  config = dataclasses.replace(TINY, keep_prob=0.5)
  model = build(config)
  ids = tf.constant([[1, 2, 3]] * 4)
  a, _ = model(ids, model.zero_state(4), dropout_seed=tf.constant([1, 2]))
  b, _ = model(ids, model.zero_state(4), dropout_seed=tf.constant([1, 2]))
  c, _ = model(ids, model.zero_state(4), dropout_seed=tf.constant([3, 4]))
  d, _ = model(ids, model.zero_state(4))
  e, _ = model(ids, model.zero_state(4))
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 0
  np.testing.assert_array_equal(d, e)


def test_batch_one_test_evaluation_does_not_depend_on_the_window_length():
  model = build(TINY)
  _, eval_step = train.make_steps(model, TINY)
  ids = np.random.default_rng(0).integers(0, 50, 101)
  by_one = evaluation.evaluate(eval_step, model, ids, batch_size=1, num_steps=1)
  by_seven = evaluation.evaluate(eval_step, model, ids, batch_size=1, num_steps=7)
  by_all = evaluation.evaluate(eval_step, model, ids, batch_size=1, num_steps=500)
  assert by_one == pytest.approx(by_seven, rel=1e-5) == pytest.approx(by_all, rel=1e-5)
  logits, _ = model(ids[None, :-1], model.zero_state(1))  # every target after the first
  expected = float(token_nll(logits, ids[None, 1:])) / 100  # the mean NLL per token
  assert by_one == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("batch", [4, 5, 1])  # 12 rows in 4 groups, 15 in 4 uneven ones, 3 in 1
def test_token_nll_and_its_gradient_are_tensorflows_cross_entropy(jit_compile, batch):
  rng = np.random.default_rng(0)
  targets = tf.constant(rng.integers(0, 50, (batch, 3)), tf.int32)
  logits = tf.constant(rng.normal(0, 30, (batch, 3, 50)), tf.float32)  # exp overflows unshifted
  logits = tf.tensor_scatter_nd_update(logits, [[0, 0, 7]], [1e4])  # one word certain

  def loss_and_gradient(loss_fn):
    def run(logits):
      with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = loss_fn(logits) * 3.0  # the upstream gradient is not always 1
      return loss, tape.gradient(loss, logits)
    return tf.function(run, jit_compile=jit_compile)(logits)

  nll, grad = loss_and_gradient(lambda logits: token_nll(logits, targets, row_groups=4))
  expected, expected_grad = loss_and_gradient(lambda logits: tf.reduce_sum(
      tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)))
  np.testing.assert_allclose(nll, expected, rtol=1e-6)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
  # A diverged model's infinite logit gives a non-finite loss, as TensorFlow's does.
  inf_logits = tf.tensor_scatter_nd_update(logits, [[batch - 1, 1, 3]], [np.inf])
  assert not np.isfinite(token_nll(inf_logits, targets))


def test_bfloat16_matmuls_round_the_inputs_but_not_the_logits():
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(0, 2, (64, 16)), tf.float32)  # logits of magnitude ~10, as trained
  kernel = tf.constant(rng.normal(0, 1, (16, 50)), tf.float32)
  bias = tf.constant(rng.normal(0, 1, (50,)), tf.float32)
  targets = tf.constant(rng.integers(0, 50, 64), tf.int32)
  rounded = [tf.cast(tf.cast(t, tf.bfloat16), tf.float32) for t in (x, kernel)]

  def reference(x, kernel, bias):  # float32 maths on the bfloat16-rounded inputs
    return token_nll(tf.matmul(x, kernel) + bias, targets)

  with tf.GradientTape() as tape:
    tape.watch(rounded + [bias])
    expected = reference(*rounded, bias)
  expected_grads = tape.gradient(expected, rounded + [bias])

  @tf.function(jit_compile=True)
  def ours(x, kernel, bias):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel, bias])
      nll = token_nll(bfloat16.matmul(x, kernel) + bias, targets)  # as PTBModel.nll
    return nll, tape.gradient(nll, [x, kernel, bias])

  nll, grads = ours(x, kernel, bias)
  np.testing.assert_allclose(nll, expected, rtol=1e-6)
  # TensorFlow's bfloat16 MatMul rounds the logits themselves: its loss is 3e-4 off here.
  bfloat16_logits = tf.cast(tf.matmul(*[tf.cast(t, tf.bfloat16) for t in (x, kernel)]), tf.float32)
  assert abs(float(token_nll(bfloat16_logits + bias, targets)) - float(expected)) > 1e-4 * expected
  for grad, expected_grad in zip(grads, expected_grads):  # bfloat16 gradient of the logits
    np.testing.assert_allclose(grad, expected_grad, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("clip_norm", [1e3, 5.0, 0.1])  # no clipping, some, all
def test_clip_by_global_norm_gives_tensorflows_numbers(jit_compile, clip_norm):
  dense = [tf.random.stateless_normal(shape, [0, i]) for i, shape in
           enumerate([[200, 300], [300], [40, 7]])]
  rows = tf.IndexedSlices(tf.random.stateless_normal([5, 7], [1, 0]), tf.constant([0, 3, 3, 8, 9]),
                          tf.constant([10, 7]))
  ours = tf.function(train.clip_by_global_norm, jit_compile=jit_compile)
  (*clipped, clipped_rows), norm = ours(dense + [rows], clip_norm)
  (*expected, expected_rows), expected_norm = tf.clip_by_global_norm(dense + [rows], clip_norm)
  np.testing.assert_allclose(norm, expected_norm, rtol=1e-6)
  for got, want in zip(clipped + [clipped_rows.values], expected + [expected_rows.values]):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(clipped_rows.indices, rows.indices)
  # An infinite gradient makes every gradient NaN, so that a diverged run shows, as TensorFlow's.
  (diverged, finite), _ = ours([dense[0] * np.inf, dense[1]], clip_norm)
  assert np.isnan(diverged).all() and np.isnan(finite).all()


def test_clip_by_global_norm_takes_gradients_of_unknown_shape():
  """As tf.distribute hands them over after the all-reduce."""
  grads = [tf.random.stateless_normal([6, 4], [2, 0]), tf.random.stateless_normal([4], [2, 1])]
  ours = tf.function(train.clip_by_global_norm,
                     input_signature=[[tf.TensorSpec([None, None]), tf.TensorSpec([None])],
                                      tf.TensorSpec([])])
  clipped, norm = ours(grads, 1.0)
  expected, expected_norm = tf.clip_by_global_norm(grads, 1.0)
  np.testing.assert_allclose(norm, expected_norm, rtol=1e-6)
  for got, want in zip(clipped, expected):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
