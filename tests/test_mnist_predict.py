"""python -m mnist_rnn.predict: image files in, the SavedModel's digit and probability out."""
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_clean_error, run_cli
from mnist_rnn import data

LINE = re.compile(r"digit (\d)  probability (\d\.\d{4})  (\S+)")


def write_png(path, image):
  tf.io.write_file(str(path), tf.io.encode_png(image))
  return path


def predictions(result):
  assert result.returncode == 0, result.stderr
  return [(int(digit), float(p), path) for digit, p, path in LINE.findall(result.stdout)]


def test_predict_prints_the_savedmodels_digit_for_each_file(mnist_trained, mnist_dir, tmp_path):
  model_dir = mnist_trained[0]
  images, _ = data.read_split(mnist_dir, "test")
  paths = [write_png(tmp_path / f"test_{i}.png", images[i][..., None]) for i in range(4)]
  printed = predictions(run_cli("mnist_rnn.predict", f"--model_dir={model_dir}", *paths))

  serve = tf.saved_model.load(str(model_dir / "export")).signatures["serving_default"]
  outputs = serve(images=tf.constant(images[:4]))
  expected = [(int(c), round(float(p[c]), 4), str(path))
              for c, p, path in zip(outputs["classes"].numpy(),
                                    outputs["probabilities"].numpy(), paths)]
  assert [(d, round(p, 4), path) for d, p, path in printed] == expected


@pytest.mark.slow
def test_invert_reads_dark_ink_on_light_colour_images(mnist_trained, mnist_dir, tmp_path):
  model_dir = mnist_trained[0]
  images, _ = data.read_split(mnist_dir, "test")
  gray = write_png(tmp_path / "gray.png", images[0][..., None])
  paper = write_png(tmp_path / "paper.png", np.repeat(255 - images[0][..., None], 3, axis=-1))
  plain = predictions(run_cli("mnist_rnn.predict", f"--model_dir={model_dir}", gray))
  inverted = predictions(run_cli("mnist_rnn.predict", f"--model_dir={model_dir}", "--invert",
                                 paper))
  assert len(plain) == len(inverted) == 1
  assert inverted[0][0] == plain[0][0]
  assert abs(inverted[0][1] - plain[0][1]) < 0.01


@pytest.mark.slow
def test_unreadable_image_is_a_clean_error(tmp_path):
  bad = tmp_path / "notes.png"
  bad.write_text("not an image")
  missing = tmp_path / "missing.png"
  for path, words in ((bad, "not a readable"), (missing, "no such file")):
    assert_clean_error(run_cli("mnist_rnn.predict", f"--model_dir={tmp_path}", path),
                       str(path), words)


@pytest.mark.slow
def test_model_dir_without_export_is_a_clean_error(tmp_path):
  image = write_png(tmp_path / "zero.png", np.zeros((28, 28, 1), np.uint8))
  result = run_cli("mnist_rnn.predict", f"--model_dir={tmp_path}", image)
  assert_clean_error(result, "no SavedModel", str(tmp_path / "export"))
