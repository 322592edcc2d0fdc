"""mnist_rnn.data: the IDX reader and its failure modes, tensorflow-datasets, pipelines, images."""
import gzip
import socket
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from common.errors import UserError
from conftest import write_idx
from mnist_rnn import data

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"


def test_reads_the_four_idx_files(mnist_tiny_dir):
  mnist = data.load(mnist_tiny_dir)
  images, labels = mnist["train"]
  assert images.shape == (5, 28, 28) and images.dtype == np.uint8
  assert labels.tolist() == [0, 1, 2, 3, 4]
  assert mnist["test"][0].shape == (3, 28, 28)
  assert mnist["test"][1].tolist() == [0, 1, 2]


def test_pixels_keep_their_row_major_layout(tmp_path):
  image = np.arange(28 * 28).reshape(1, 28, 28) % 256
  write_idx(tmp_path / "x.gz", data.IMAGE_MAGIC, image)
  read = data.read_idx(tmp_path / "x.gz", data.IMAGE_MAGIC, (28, 28))
  assert read[0, 0, :3].tolist() == [0, 1, 2]  # row 0 is the first time step
  assert read[0, 1, 0] == 28


def gzip_bytes(path, raw):
  with gzip.open(path, "wb") as f:
    f.write(raw)


def header(magic, *dims):
  return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


CORRUPTIONS = {  # name -> (how to spoil train-labels, words the error must contain)
    "empty file": (lambda p: p.write_bytes(b""), "is empty"),
    "empty gzip": (lambda p: gzip_bytes(p, b""), "is empty"),
    "not gzip": (lambda p: p.write_bytes(b"this is no gzip file"), "not gzip"),
    "truncated gzip": (lambda p: p.write_bytes(p.read_bytes()[:30]), "truncated"),
    "short header": (lambda p: gzip_bytes(p, header(2049)[:6]), "less than its header"),
    "wrong magic": (lambda p: gzip_bytes(p, header(2051, 5) + bytes(5)), "magic number 2051"),
    "truncated data": (lambda p: gzip_bytes(p, header(2049, 5) + bytes(4)), "is truncated"),
    "trailing bytes": (lambda p: gzip_bytes(p, header(2049, 5) + bytes(6)), "trailing bytes"),
    "count mismatch": (lambda p: gzip_bytes(p, header(2049, 4) + bytes(4)), "holds 5 images"),
    "label 10": (lambda p: gzip_bytes(p, header(2049, 5) + bytes([0, 1, 2, 3, 10])), "label 10"),
    "missing": (lambda p: p.unlink(), "but not train-labels-idx1-ubyte.gz"),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_spoilt_labels_file_is_a_user_error_naming_it(mnist_tiny_dir, name):
  spoil, words = CORRUPTIONS[name]
  spoil(mnist_tiny_dir / TRAIN_LABELS)
  with pytest.raises(UserError, match=TRAIN_LABELS) as error:
    data.load(mnist_tiny_dir)
  assert words in str(error.value)


def test_images_of_the_wrong_size_are_refused(mnist_tiny_dir):
  write_idx(mnist_tiny_dir / TRAIN_IMAGES, data.IMAGE_MAGIC, np.zeros((5, 27, 28)))
  with pytest.raises(UserError, match=r"shape \(27, 28\), expected \(28, 28\)"):
    data.load(mnist_tiny_dir)


def test_directory_without_idx_files_uses_tensorflow_datasets(tmp_path):
  with tfds.testing.mock_data(num_examples=7), \
       mock.patch.object(data.data_dirs, "check_reachable") as check_reachable:
    mnist = data.load(tmp_path)
  check_reachable.assert_called_once_with(data.TFDS_URL)  # not yet prepared: it downloads
  for split in ("train", "test"):
    images, labels = mnist[split]
    assert images.shape == (7, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (7,) and labels.max() < 10


def test_tensorflow_datasets_failure_says_how_to_provide_the_files(tmp_path):
  with mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare",
                         side_effect=OSError("network is unreachable")), \
       mock.patch.object(data.data_dirs, "check_reachable"):
    with pytest.raises(UserError, match="network is unreachable") as error:
      data.load(tmp_path)
  assert "--data_dir" in str(error.value) and TRAIN_IMAGES in str(error.value)


def test_offline_it_stops_before_tensorflow_datasets_retries(tmp_path):
  # Offline, tfds retries its download for minutes; we ask the host once and stop.
  unreachable = OSError("cannot reach storage.googleapis.com: Name or service not known")
  with mock.patch.object(data.data_dirs, "check_reachable", side_effect=unreachable), \
       mock.patch.object(tfds.core.DatasetBuilder, "download_and_prepare") as download:
    with pytest.raises(UserError, match="cannot reach storage.googleapis.com") as error:
      data.load(tmp_path)
  download.assert_not_called()
  assert "--data_dir" in str(error.value) and TRAIN_IMAGES in str(error.value)


def test_check_reachable_tells_a_closed_port_from_an_open_one():
  with socket.socket() as listening:
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]
    data.data_dirs.check_reachable(f"http://127.0.0.1:{port}/file")  # accepts: no error
  with pytest.raises(OSError, match="cannot reach 127.0.0.1"):
    data.data_dirs.check_reachable(f"http://127.0.0.1:{port}/file", timeout=2)  # now closed


def test_synthetic_data_has_mnist_shapes():
  mnist = data.synthetic(seed=1, num_train=6, num_test=4)
  assert mnist["train"][0].shape == (6, 28, 28) and mnist["test"][1].shape == (4,)
  assert mnist["train"][0].dtype == np.uint8 and mnist["train"][1].max() < 10


def test_batches_scale_pixels_and_keep_the_short_last_batch():
  images = np.full((5, 28, 28), 255, np.uint8)
  images[:, 0, 0] = 0
  batches = list(data.batches(data.examples(images, np.arange(5)), batch_size=2))
  assert [len(labels) for _, labels in batches] == [2, 2, 1]
  first_images, first_labels = batches[0]
  assert first_images.dtype == tf.float32 and first_labels.dtype == tf.int64
  assert first_images.shape == (2, 28, 28)
  assert float(tf.reduce_min(first_images)) == 0.0 and float(tf.reduce_max(first_images)) == 1.0
  assert [int(y) for _, labels in batches for y in labels] == [0, 1, 2, 3, 4]  # eval: in order


def test_shuffle_is_a_permutation_fixed_by_its_seed():
  examples = data.examples(np.zeros((50, 28, 28), np.uint8), np.arange(50))

  def order(seed):
    return [int(y) for _, labels in data.batches(examples, 8, seed) for y in labels]

  assert sorted(order(3)) == list(range(50))
  assert order(3) == order(3)
  assert order(3) != order(4)


def write_png(path, image):
  tf.io.write_file(str(path), tf.io.encode_png(image))


def test_read_image_keeps_an_mnist_sized_grayscale_png(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8)
  write_png(tmp_path / "digit.png", image)
  read = data.read_image(tmp_path / "digit.png")
  assert read.dtype == tf.uint8 and read.shape == (28, 28)
  np.testing.assert_array_equal(read.numpy(), image[..., 0])


def test_read_image_makes_colour_ink_on_paper_look_like_mnist(tmp_path):
  digit = np.zeros((28, 28), np.uint8)
  digit[6:22, 12:16] = 255  # a light "1" on black
  paper = np.repeat(255 - digit[..., None], 3, axis=-1)  # dark ink on white, RGB
  big = np.repeat(np.repeat(paper, 3, axis=0), 3, axis=1)  # 84x84
  tf.io.write_file(str(tmp_path / "one.jpg"), tf.io.encode_jpeg(big, quality=100))
  read = data.read_image(tmp_path / "one.jpg", invert=True).numpy().astype(int)
  assert read[8:20, 13:15].min() > 200  # the stroke is light
  assert read[:, :8].max() < 30 and read[:, 20:].max() < 30  # the background is dark
  assert np.abs(read - digit).mean() < 8


def test_read_image_drops_alpha(tmp_path):
  rgba = np.zeros((28, 28, 4), np.uint8)
  rgba[..., :3] = 200
  write_png(tmp_path / "rgba.png", rgba)
  assert data.read_image(tmp_path / "rgba.png").numpy().max() == 200


@pytest.mark.parametrize("contents, words", [(None, "no such file"),
                                             (b"GIF89a\x00", "not a readable"),
                                             (b"hello", "not a readable")])
def test_unreadable_image_is_a_user_error_naming_it(tmp_path, contents, words):
  path = tmp_path / "bad.png"
  if contents is not None:
    path.write_bytes(contents)
  with pytest.raises(UserError, match=words) as error:
    data.read_image(path)
  assert str(path) in str(error.value)
