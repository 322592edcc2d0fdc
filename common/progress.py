"""Progress lines with rate and ETA, and the TensorBoard writer both apps use."""
import time

import tensorflow as tf
from absl import logging


class Progress:
  """Times a loop of `total` steps and reports items/second and the time left."""

  def __init__(self, total, done=0):
    self.total = total
    self.start_done = done
    self.start = time.perf_counter()

  def elapsed(self):
    return time.perf_counter() - self.start

  def eta(self, done):
    rate = (done - self.start_done) / max(self.elapsed(), 1e-9)
    return (self.total - done) / rate if rate > 0 else float("inf")


def format_seconds(seconds):
  if seconds == float("inf"):
    return "--:--"
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class Summaries:
  """TensorBoard scalars and images under stable names, one writer per split (train/, valid/,
  test/)."""

  def __init__(self, log_dir):
    self.log_dir = log_dir
    self.writers = {}

  def scalars(self, split, values, step):
    with self._writer(split).as_default():
      for name, value in values.items():
        tf.summary.scalar(name, value, step=step)
    self.writers[split].flush()

  def images(self, split, images, step):
    """{name: uint8 [height, width, channels] or a list of them}: TensorBoard images."""
    with self._writer(split).as_default():
      for name, pictures in images.items():
        pictures = pictures if isinstance(pictures, (list, tuple)) else [pictures]
        for i, picture in enumerate(pictures):
          tf.summary.image(f"{name}/{i}" if len(pictures) > 1 else name, picture[None],
                           step=step)
    self.writers[split].flush()

  def _writer(self, split):
    if split not in self.writers:
      self.writers[split] = tf.summary.create_file_writer(f"{self.log_dir}/{split}")
    return self.writers[split]

  def close(self):
    for writer in self.writers.values():
      writer.close()


def log(message, *args):
  """logging.info, the one way both apps log; the line names log's caller, not this file."""
  logging.info(message, *args)


logging.ABSLLogger.register_frame_to_skip(__file__, "log")
