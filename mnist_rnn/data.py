"""MNIST as uint8 arrays (the original IDX files, else tensorflow-datasets) and tf.data pipelines.

Each 28x28 image is read by the RNN as a sequence, one row per time step:

    image [28 rows, 28 columns]        RNN input [28 time steps, 28 features]
    row 0  ........##..........  -->  x_0  = pixels of row 0, scaled to [0, 1]
    row 1  .......###..........  -->  x_1
    ...                                ...
    row 27 ....................  -->  x_27 --> last hidden state --> 10 logits
"""
import gzip
import pathlib
import re
import zlib

import numpy as np
import tensorflow as tf

from common import data_dir as data_dirs
from common.errors import UserError

IMAGE_SIZE = 28
NUM_CLASSES = 10
IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, columns)
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
FILES = {  # split -> (images file, labels file), as published at yann.lecun.com/exdb/mnist
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
TFDS_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"  # where tfds' mnist downloads from
REFETCH = "replace it with the original from the MNIST site, or remove the four files to use " \
          "tensorflow-datasets"


def read_idx(path, magic, item_shape):
  """Reads one gzipped IDX file into a uint8 array, checking everything its header promises.

  Args:
    path: a `*-idx?-ubyte.gz` file.
    magic: IMAGE_MAGIC or LABEL_MAGIC.
    item_shape: shape of one item: (28, 28) for images, () for labels.

  Returns:
    uint8 array [count, *item_shape].

  Raises:
    UserError: naming the file, when it is missing, empty, truncated or not what it should be.
  """
  try:
    with gzip.open(path, "rb") as f:
      raw = f.read()
  except FileNotFoundError:
    raise UserError(f"{path} is missing: put all four MNIST .gz files in that directory") from None
  except (OSError, EOFError, zlib.error) as e:
    raise UserError(f"{path} is truncated or not gzip data ({e}): {REFETCH}") from None
  ndims = 1 + len(item_shape)
  header_size = 4 + 4 * ndims  # big-endian int32 magic, then one big-endian int32 per dimension
  if len(raw) < header_size:
    what = "is empty" if not raw else f"holds only {len(raw)} bytes, less than its header"
    raise UserError(f"{path} {what}: {REFETCH}")
  found = int.from_bytes(raw[:4], "big")
  if found != magic:
    raise UserError(f"{path} has magic number {found}, expected {magic} for MNIST "
                    f"{'images' if magic == IMAGE_MAGIC else 'labels'}: {REFETCH}")
  shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndims, offset=4))
  if shape[1:] != tuple(item_shape):
    raise UserError(f"{path} holds items of shape {shape[1:]}, expected {item_shape}: {REFETCH}")
  expected = header_size + int(np.prod(shape))
  if len(raw) != expected:
    what = "is truncated" if len(raw) < expected else "has trailing bytes"
    raise UserError(f"{path} {what}: {len(raw)} bytes uncompressed, its header promises "
                    f"{expected}: {REFETCH}")
  return np.frombuffer(raw, np.uint8, offset=header_size).reshape(shape)


def read_split(data_dir, split):
  """Returns (images uint8 [N, 28, 28], labels uint8 [N]) of 'train' or 'test' from IDX files."""
  images_file, labels_file = (pathlib.Path(data_dir) / name for name in FILES[split])
  images = read_idx(images_file, IMAGE_MAGIC, (IMAGE_SIZE, IMAGE_SIZE))
  labels = read_idx(labels_file, LABEL_MAGIC, ())
  if len(images) != len(labels):
    raise UserError(f"{images_file} holds {len(images)} images but {labels_file} holds "
                    f"{len(labels)} labels: the two files do not belong together; {REFETCH}")
  if labels.size and labels.max() >= NUM_CLASSES:
    raise UserError(f"{labels_file} has label {labels.max()}, MNIST labels are 0-9: {REFETCH}")
  return images, labels


def load(data_dir):
  """Returns {'train': (images, labels), 'test': (images, labels)} as uint8 numpy arrays.

  Reads the four original IDX files when `data_dir` holds them, else asks tensorflow-datasets
  (which downloads into `data_dir` on a networked machine).
  """
  data_dir = pathlib.Path(data_dir)
  names = [name for pair in FILES.values() for name in pair]
  present = [name for name in names if (data_dir / name).exists()]
  if not present:
    return load_tfds(data_dir)
  missing = sorted(set(names) - set(present))
  if missing:
    raise UserError(f"{data_dir} has {', '.join(present)} but not {', '.join(missing)}: put "
                    "all four MNIST .gz files there, or none to use tensorflow-datasets")
  return {split: read_split(data_dir, split) for split in FILES}


def load_tfds(data_dir):
  """MNIST from tensorflow-datasets, as the same uint8 arrays the IDX reader returns."""
  import tensorflow_datasets as tfds  # slow to import; only this fallback needs it

  try:
    builder = tfds.builder("mnist", data_dir=str(data_dir))
    if not builder.is_prepared():
      data_dirs.check_reachable(TFDS_URL)
    builder.download_and_prepare()
    splits = builder.as_dataset(split=["train", "test"], as_supervised=True)
  except Exception as e:  # pylint: disable=broad-except: offline, tfds fails in many ways
    reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    raise UserError(f"could not get MNIST from tensorflow-datasets ({reason}); put "
                    f"{', '.join(FILES['train'] + FILES['test'])} in a directory and pass it "
                    "as --data_dir or $MNIST_DATA_DIR") from None
  arrays = {}
  for split, dataset in zip(("train", "test"), splits):
    images, labels = dataset.batch(1 << 20).get_single_element()  # the whole split at once
    # tfds images are [N, 28, 28, 1]; drop the channel to match the IDX layout.
    arrays[split] = (images.numpy()[..., 0], labels.numpy().astype(np.uint8))
  return arrays


def synthetic(seed, num_train=60000, num_test=10000):
  """Random images and labels of MNIST's shapes and sizes: for speed runs without the data."""
  rng = np.random.default_rng(seed)

  def split(n):
    return (rng.integers(0, 256, (n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8),
            rng.integers(0, NUM_CLASSES, n, dtype=np.uint8))

  return {"train": split(num_train), "test": split(num_test)}


def preprocess(images):
  """uint8 [batch, 28, 28] -> float32 [batch, 28, 28] in [0, 1], as the tutorial feeds them."""
  return tf.cast(images, tf.float32) / 255.0


def examples(images, labels):
  """A cached dataset of (uint8 image [28, 28], int64 label) pairs, shuffled later per epoch."""
  return tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64))).cache()


def batches(dataset, batch_size, shuffle_seed=None):
  """Batches of (float32 images [batch, 28, 28], int64 labels [batch]); the last may be short.

  Args:
    dataset: from `examples`.
    batch_size: examples per batch.
    shuffle_seed: None keeps the order (evaluation); training passes one seed per epoch, so a
      resumed run sees the same order as one that was never interrupted.
  """
  if shuffle_seed is not None:
    dataset = dataset.shuffle(dataset.cardinality(), seed=shuffle_seed)
  dataset = dataset.batch(batch_size).map(lambda x, y: (preprocess(x), y))
  return dataset.prefetch(2)  # a fixed buffer: common.distribute turns autotuning off


def read_image(path, invert=False):
  """Reads a PNG/JPEG/BMP/GIF file as a uint8 [28, 28] MNIST-style image (light digit on dark).

  Colour becomes grayscale, any size is resized to 28x28; `invert` turns dark-on-light
  (ink on paper) into MNIST's light-on-dark.

  Raises:
    UserError: naming the file when it cannot be read or decoded.
  """
  try:
    contents = tf.io.read_file(str(path))
    image = tf.io.decode_image(contents, expand_animations=False)  # [height, width, channels]
  except tf.errors.NotFoundError:
    raise UserError(f"{path}: no such file") from None
  except tf.errors.OpError as e:
    reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", e.message).strip()  # drop TF's op details
    raise UserError(f"{path} is not a readable PNG, JPEG, BMP or GIF image ({reason}): "
                    "pass an image file") from None
  if image.shape[-1] in (2, 4):  # drop the alpha channel
    image = image[..., :-1]
  if image.shape[-1] == 3:
    image = tf.image.rgb_to_grayscale(image)
  image = tf.image.resize(tf.cast(image, tf.float32), [IMAGE_SIZE, IMAGE_SIZE], antialias=True)
  if invert:
    image = 255.0 - image
  return tf.cast(tf.round(tf.clip_by_value(image[..., 0], 0.0, 255.0)), tf.uint8)
