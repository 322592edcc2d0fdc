"""Penn Treebank reader and the truncated-BPTT batcher of ptb_word_lm's reader.py.

The id stream is cut into `batch_size` rows and read in windows of `num_steps`; targets are
the inputs shifted one word to the right. For 15 tokens, batch 3, 2 steps:

    stream  0 1 2 3 4 5 6 7 8 9 10 11 12 13 14
    rows    [ 0  1  2  3  4]          window 0: x = [[0 1]  [5 6]  [10 11]]
            [ 5  6  7  8  9]                    y = [[1 2]  [6 7]  [11 12]]
            [10 11 12 13 14]          window 1: x = [[2 3]  [7 8]  [12 13]]
                                                y = [[3 4]  [8 9]  [13 14]]

Row r of window i+1 continues row r of window i, which is why the LSTM state is carried.
"""
import collections
import pathlib
import tarfile

import numpy as np
from absl import logging

from common import data_dir as data_dirs
from common.errors import UserError

SPLITS = ("train", "valid", "test")
FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
SHA256 = {
    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
ARCHIVE_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
EOS, UNK = "<eos>", "<unk>"


def read_words(path):
  """Whitespace-split words of a file with `<eos>` at each line end (as reader.py)."""
  path = pathlib.Path(path)
  try:
    text = path.read_bytes().decode("utf-8")
  except FileNotFoundError:
    raise UserError(f"{path} does not exist: pass --data_dir holding ptb.{{train,valid,test}}"
                    ".txt") from None
  except UnicodeDecodeError as e:
    raise UserError(f"{path} is not UTF-8 text (byte {e.start}): pass the PTB text files, "
                    "not an archive or binary") from None
  words = text.replace("\n", f" {EOS} ").split()
  if not words:
    raise UserError(f"{path} is empty: restore it from the simple-examples archive")
  return words


def build_vocab(words):
  """Vocabulary of the training words: id order is (descending count, then word)."""
  counts = collections.Counter(words)
  ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
  return [word for word, _ in ordered]


def to_ids(words, vocab, name="text"):
  """Maps words to ids; out-of-vocabulary words become `<unk>` with a counted warning."""
  word_to_id = {word: i for i, word in enumerate(vocab)}
  unk = word_to_id.get(UNK, 0)
  ids = np.fromiter((word_to_id.get(w, -1) for w in words), dtype=np.int32, count=len(words))
  missing = int((ids < 0).sum())
  if missing:
    logging.warning("%s: %d of %d words are not in the vocabulary; mapped to %s",
                    name, missing, len(words), UNK)
    ids[ids < 0] = unk
  return ids


def ensure_files(data_dir):
  """Makes sure DATA_DIR holds the three PTB files, downloading the archive if none is there."""
  data_dir = pathlib.Path(data_dir)
  missing = [name for name in FILES.values() if not (data_dir / name).exists()]
  if not missing:
    return data_dir
  if len(missing) < len(FILES):
    raise UserError(f"{data_dir} lacks {', '.join(missing)}: put all three PTB files there")
  archive = data_dir / "simple-examples.tgz"
  data_dir.mkdir(parents=True, exist_ok=True)
  try:
    if not archive.exists():
      logging.info("PTB not found in %s; downloading %s", data_dir, ARCHIVE_URL)
      data_dirs.download(ARCHIVE_URL, archive)
  except UserError as e:
    raise UserError(f"no PTB files in {data_dir} and {e}: download simple-examples.tgz, and "
                    "pass --data_dir=.../simple-examples/data (or set $PTB_DATA_DIR)") from None
  _extract(archive, data_dir)
  return data_dir


def _extract(archive, data_dir):
  """Extracts the three files, verifies all checksums, and only then moves them in place.

  A corrupt archive is deleted (so the next run downloads it again) and leaves nothing behind.
  """
  temporary = {split: data_dir / f".{name}.tmp" for split, name in FILES.items()}
  try:
    try:
      with tarfile.open(archive) as tar:
        for split, name in FILES.items():
          temporary[split].write_bytes(tar.extractfile(f"./simple-examples/data/{name}").read())
    except (tarfile.TarError, KeyError, EOFError) as e:
      raise UserError(f"{archive} is not a readable simple-examples archive ({e}); it was "
                      "deleted, run again to fetch it anew") from None
    for split, path in temporary.items():
      try:
        data_dirs.verify_sha256(path, SHA256[split])
      except UserError:
        raise UserError(f"{archive}: {FILES[split]} has sha256 {data_dirs.sha256_of(path)[:12]}"
                        f"..., not {SHA256[split][:12]}...: the download is corrupt; it was "
                        "deleted, run again to fetch it anew") from None
    for split, path in temporary.items():
      path.rename(data_dir / FILES[split])
  except UserError:
    archive.unlink(missing_ok=True)
    raise
  finally:
    for path in temporary.values():
      path.unlink(missing_ok=True)


def load(data_dir):
  """Reads the three splits.

  Returns:
    ({'train': ids, 'valid': ids, 'test': ids} as int32 arrays, vocab list of words).
  """
  data_dir = ensure_files(data_dir)
  words = {split: read_words(data_dir / FILES[split]) for split in SPLITS}
  vocab = build_vocab(words["train"])
  ids = {split: to_ids(words[split], vocab, FILES[split]) for split in SPLITS}
  return ids, vocab


def windows(ids, batch_size, num_steps):
  """All (inputs, targets) windows of one epoch, as in reader.ptb_producer.

  Returns:
    inputs and targets, int32 arrays of shape [epoch_size, batch_size, num_steps].
  """
  batch_len = len(ids) // batch_size
  epoch_size = (batch_len - 1) // num_steps
  if epoch_size < 1:
    raise UserError(f"{len(ids)} tokens are too few for batch_size={batch_size} x "
                    f"num_steps={num_steps}: use more data or smaller --batch_size/--num_steps")
  rows = np.asarray(ids[:batch_size * batch_len], np.int32).reshape(batch_size, batch_len)
  span = epoch_size * num_steps
  inputs = rows[:, :span].reshape(batch_size, epoch_size, num_steps).transpose(1, 0, 2)
  targets = rows[:, 1:span + 1].reshape(batch_size, epoch_size, num_steps).transpose(1, 0, 2)
  return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)


def synthetic(vocab_size, num_tokens=100_000, seed=0):
  """Random ids of the real vocabulary size, for speed runs without the dataset."""
  rng = np.random.default_rng(seed)
  ids = {split: rng.integers(0, vocab_size, num_tokens, dtype=np.int32) for split in SPLITS}
  return ids, [EOS, UNK] + [f"w{i}" for i in range(2, vocab_size)]
