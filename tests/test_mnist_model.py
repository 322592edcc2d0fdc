"""mnist_rnn.model and the train/eval steps: shapes, parameter count, learning."""
import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_independent_draws
from mnist_rnn import configs, data, train
from mnist_rnn.model import build_model

SMALL = dataclasses.replace(configs.TestConfig(), hidden_size=8)


def test_tutorial_model_has_the_tutorials_parameter_count():
  model = build_model(configs.TutorialConfig())
  lstm = 4 * (128 * (28 + 128) + 128)  # four gates: input and recurrent kernels, bias
  dense = 128 * 10 + 10
  assert (lstm, dense) == (80_384, 1_290)
  assert model.count_params() == 81_674


@pytest.mark.parametrize("overrides, params", [
    ({}, 4 * (8 * (28 + 8) + 8) + 8 * 10 + 10),
    ({"cell": "rnn"}, 8 * (28 + 8) + 8 + 8 * 10 + 10),
    ({"cell": "gru"}, 3 * (8 * (28 + 8) + 2 * 8) + 8 * 10 + 10),  # Keras' GRU: two biases
    ({"num_layers": 2}, 4 * (8 * (28 + 8) + 8) + 4 * (8 * (8 + 8) + 8) + 8 * 10 + 10),
    ({"bidirectional": True}, 2 * 4 * (8 * (28 + 8) + 8) + 16 * 10 + 10),
])
def test_output_shape_and_parameter_count(overrides, params):
  model = build_model(dataclasses.replace(SMALL, **overrides))
  logits = model(tf.zeros([3, 28, 28]))
  assert logits.shape == (3, 10) and logits.dtype == tf.float32
  assert model.count_params() == params


@pytest.mark.parametrize("lstm", ["fast", "keras"])
def test_every_weight_starts_from_its_own_draws(lstm):
  keras.utils.set_random_seed(0)
  model = build_model(dataclasses.replace(SMALL, num_layers=2, bidirectional=True, lstm=lstm))
  model(tf.zeros([1, 28, 28]))
  assert_independent_draws(model)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_float32_weights_and_logits(precision):
  model = build_model(dataclasses.replace(SMALL, precision=precision))
  assert model(tf.zeros([2, 28, 28])).dtype == tf.float32
  assert all(v.dtype == "float32" for v in model.trainable_variables)
  assert model.layers[1].compute_dtype == precision.split("_")[1]


def make_step(config):
  keras.utils.set_random_seed(0)
  model = build_model(config)
  optimizer = train.make_optimizer(config)
  optimizer.build(model.trainable_variables)
  return model, train.make_train_step(model, optimizer)


def test_one_step_changes_every_trainable_variable():
  model, train_step = make_step(SMALL)
  before = [v.numpy().copy() for v in model.trainable_variables]
  train_step(tf.random.uniform([4, 28, 28]), tf.constant([0, 1, 2, 3], tf.int64))  # eagerly
  for old, variable in zip(before, model.trainable_variables):
    assert not np.allclose(old, variable.numpy()), variable.path


def test_batch_sums_are_sums_not_means():
  labels = tf.constant([0, 1, 1], tf.int64)
  logits = tf.constant([[9.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
  sums = train.batch_sums(labels, logits)
  nll = -tf.nn.log_softmax(logits).numpy()[[0, 1, 2], [0, 1, 1]]
  assert float(sums["correct"]) == 2 and int(sums["count"]) == 3
  assert float(sums["loss"]) == pytest.approx(nll.sum(), rel=1e-5)


def test_a_few_dozen_steps_on_real_mnist_lower_the_loss(mnist_dir):
  images, labels = data.read_split(mnist_dir, "train")
  model, train_step = make_step(configs.TutorialConfig())
  train_step = tf.function(train_step)
  eval_step = tf.function(train.make_eval_step(model))
  held_out = (data.preprocess(images[-1000:]), tf.constant(labels[-1000:], tf.int64))

  def held_out_loss():
    sums = eval_step(*held_out)
    return float(sums["loss"]) / int(sums["count"])

  before = held_out_loss()
  dataset = data.batches(data.examples(images[:-1000], labels[:-1000]), 128, shuffle_seed=0)
  for batch_images, batch_labels in dataset.take(50):
    train_step(batch_images, batch_labels)
  after = held_out_loss()
  assert before > 2.2  # chance: ln(10) = 2.30
  assert after < before - 0.5, (before, after)
