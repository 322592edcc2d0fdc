"""The language model's data: any UTF-8 text as word or character ids, and the batcher of
ptb_word_lm's reader.py.

Where the text comes from (`load`): `text_file`, one file cut in three contiguous parts by
code point, as nanoGPT cuts tiny Shakespeare (n = len(text), in characters, not bytes):

    text [0 ........................... int(0.9 n)) [ ... int(0.95 n)) [ ... n)
          train (90%)                                 valid (5%)        test (5%)

At word level each of the two cuts moves forward to just after the next newline (it stays
where it is when it already falls at a line start), so no word, and no line with its `<eos>`,
is cut in half. Or `data_dir` holding train.txt, valid.txt, test.txt, or Penn Treebank's
ptb.train.txt, ptb.valid.txt, ptb.test.txt (downloaded there when it holds neither set).
Given neither, characters read tiny Shakespeare (`resolve_text_file`: $SHAKESPEARE_FILE, else
the per-user cache's copy, downloaded once), words PTB.

Tokens (`level`):
  word  PTB's reader: whitespace-split words, `<eos>` at each line end. The vocabulary is the
        `vocab_size` most frequent training words, by descending count then the word; `<unk>`
        is added last (in place of the least frequent kept word) when it is not among them.
        Other words read as `<unk>`. PTB already has exactly 10,000 words with `<unk>`.
  char  Unicode code points (so "é" or "日" is one token; a newline is one too). The
        vocabulary is the training split's distinct characters in code-point order
        (nanoGPT's sorted(set(text))), then `<unk>` for characters only valid or test holds:

            train "hi\nhé"   vocab  0 "\n"  1 "h"  2 "i"  3 "é"  4 "<unk>"
                             ids    1 2 0 1 3
            valid "hö"       ids    1 4          (warning: 1 of 2 characters unseen)

The batcher cuts an id stream into `batch_size` rows read in windows of `num_steps`; targets
are the inputs shifted one token to the right. For 15 tokens, batch 3, 2 steps:

    stream  0 1 2 3 4 5 6 7 8 9 10 11 12 13 14
    rows    [ 0  1  2  3  4]          window 0: x = [[0 1]  [5 6]  [10 11]]
            [ 5  6  7  8  9]                    y = [[1 2]  [6 7]  [11 12]]
            [10 11 12 13 14]          window 1: x = [[2 3]  [7 8]  [12 13]]
                                                y = [[3 4]  [8 9]  [13 14]]

Row r of window i+1 continues row r of window i, which is why the LSTM state is carried.
"""
import collections
import os
import pathlib
import tarfile

import numpy as np
from absl import logging

from common import data_dir as data_dirs
from common.errors import UserError

SPLITS = ("train", "valid", "test")
FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
TEXT_FILES = {split: f"{split}.txt" for split in SPLITS}
LEVELS = ("word", "char")
SPLIT_FRACTIONS = (0.9, 0.95)  # where valid and test start in a text_file (nanoGPT's 90%)
SHA256 = {
    "train": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
ARCHIVE_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
# Tiny Shakespeare, char-rnn's corpus and nanoGPT's shakespeare_char: what --level=char reads
# when no text is given (1,115,394 bytes).
SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                   "tinyshakespeare/input.txt")
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILE = "SHAKESPEARE_FILE"  # the environment variable naming a copy of it
EOS, UNK = "<eos>", "<unk>"


def load(data_dir, text_file="", level="word", vocab_size=None):
  """Reads the three splits as ids of one vocabulary built from the training split.

  Args:
    data_dir: directory of train/valid/test.txt or ptb.*.txt (PTB is downloaded if neither).
    text_file: one UTF-8 text to split 90/5/5 instead; when given, data_dir is not read.
    level: "word" or "char" (see the module docstring).
    vocab_size: the most words kept at word level (None: all); ignored for characters.

  Returns:
    ({'train': ids, 'valid': ids, 'test': ids} as int32 arrays, vocab: tokens in id order).
  """
  check_options(level, vocab_size)
  texts = _text_file_splits(text_file, level) if text_file else _data_dir_splits(data_dir)
  if level == "char":
    tokens = {split: text for split, (text, _) in texts.items()}
    vocab, unit = char_vocab(tokens["train"]), "characters"
  else:
    tokens = {split: words_of(text) for split, (text, _) in texts.items()}
    vocab, unit = build_vocab(tokens["train"], vocab_size), "words"
  ids = {split: to_ids(tokens[split], vocab, f"{split} split ({texts[split][1]})", unit)
         for split in SPLITS}
  return ids, vocab


def check_options(level, vocab_size):
  """Raises UserError for a level other than word/char or a vocab_size below 2."""
  if level not in LEVELS:
    raise UserError(f"level {level!r} is unknown: use --level=word or --level=char")
  if vocab_size is not None and vocab_size < 2:
    raise UserError(f"vocab_size={vocab_size} is below 2: a vocabulary needs at least one "
                    f"word and {UNK}; pass --vocab_size=2 or more")


def _text_file_splits(text_file, level):
  """{split: (text, where it came from)} of one file cut 90/5/5 (module docstring)."""
  text = read_text(text_file)
  cuts = [int(fraction * len(text)) for fraction in SPLIT_FRACTIONS]
  if level == "word":
    cuts = [_line_start(text, cut) for cut in cuts]
  bounds = dict(zip(SPLITS, zip([0] + cuts, cuts + [len(text)])))
  splits = {}
  for split, (start, end) in bounds.items():
    splits[split] = (text[start:end], f"{text_file}, characters {start}-{end}")
    if not splits[split][0].strip():
      raise UserError(f"{text_file}: the {split} split (characters {start}-{end} of "
                      f"{len(text)}) is empty or only whitespace: use a longer text"
                      + (" (word level cuts at line ends: it needs lines in its last 10%)"
                         if level == "word" else ""))
  return splits


def _line_start(text, position):
  """`position` if a line starts there, else just after the next newline (or the end)."""
  if position == 0 or text[position - 1] == "\n":
    return position
  newline = text.find("\n", position)
  return len(text) if newline < 0 else newline + 1


def _data_dir_splits(data_dir):
  """{split: (text, path)} of the three files in DATA_DIR."""
  paths = split_files(data_dir)
  return {split: (read_text(path), str(path)) for split, path in paths.items()}


def split_files(data_dir):
  """{split: path} of DATA_DIR's train/valid/test.txt or ptb.*.txt (the first whole set).

  PTB is downloaded into DATA_DIR when it holds neither set; a set with files missing is an
  error that lists them.
  """
  data_dir = pathlib.Path(data_dir)
  if data_dir.is_file():
    raise UserError(f"{data_dir} is a file, not a directory: pass it as --text_file, or a "
                    "directory holding train.txt, valid.txt, test.txt as --data_dir")
  for names in (FILES, TEXT_FILES):
    if all((data_dir / name).exists() for name in names.values()):
      return {split: data_dir / names[split] for split in SPLITS}
  for names in (FILES, TEXT_FILES):
    missing = [name for name in names.values() if not (data_dir / name).exists()]
    if len(missing) < len(names):
      raise UserError(f"{data_dir} lacks {', '.join(missing)}: put all three of "
                      f"{', '.join(names.values())} there")
  ensure_files(data_dir)
  return {split: data_dir / FILES[split] for split in SPLITS}


def read_text(path):
  """The text of a UTF-8 file, refused (UserError) if it is missing, binary or blank."""
  path = pathlib.Path(path)
  try:
    raw = path.read_bytes()
  except FileNotFoundError:
    raise UserError(f"{path} does not exist: check the path (--text_file or --data_dir)") \
        from None
  except OSError as e:
    raise UserError(f"cannot read {path} ({e.strerror}): pass a readable text file") from None
  text = _decode(raw, path)
  if not text.strip():
    # Only PTB's own files come from simple-examples.tgz; any other text is the user's.
    where = ("restore it from simple-examples.tgz" if path.name in FILES.values()
             else "pass a file with text in it")
    raise UserError(f"{path} is empty or only whitespace: {where}")
  return text


def _decode(raw, path):
  """UTF-8 text of `raw`; the first NUL or undecodable byte, whichever comes first, refused."""
  nul = raw.find(b"\0")
  try:
    text = raw.decode("utf-8")
    bad = -1
  except UnicodeDecodeError as e:
    bad = e.start
  if nul >= 0 and (bad < 0 or nul < bad):
    raise UserError(f"{path} is a binary file, not text (NUL byte at offset {nul}): pass a "
                    "UTF-8 text file")
  if bad >= 0:
    raise UserError(f"{path} is not UTF-8 text (invalid byte at offset {bad}): pass a UTF-8 "
                    "text file, not an archive or binary (or convert it: iconv -t UTF-8)")
  return text


def read_words(path):
  """Whitespace-split words of a file with `<eos>` at each line end (as reader.py)."""
  return words_of(read_text(path))


def words_of(text):
  """PTB's tokens of a text: whitespace-split words, `<eos>` at each line end."""
  return text.replace("\n", f" {EOS} ").split()


def build_vocab(words, vocab_size=None):
  """Vocabulary of the training words: id order is (descending count, then word).

  Args:
    vocab_size: keep at most this many (None: all). When `<unk>` is not among the kept words
      (the text has none, or it is too rare), the vocab_size - 1 most frequent are kept and
      `<unk>` goes last, so every other word has an id to read as.

  Returns:
    the words, a list in id order.
  """
  counts = collections.Counter(words)
  ordered = [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
  kept = ordered if vocab_size is None else ordered[:vocab_size]
  if UNK in kept:
    return kept
  others = [word for word in ordered if word != UNK]
  return (others if vocab_size is None else others[:vocab_size - 1]) + [UNK]


def char_vocab(text):
  """The training text's distinct characters by code point (nanoGPT's ids), then `<unk>`."""
  return sorted(set(text)) + [UNK]


def to_ids(tokens, vocab, name="text", unit="words"):
  """Maps tokens (words, or the characters of a string) to int32 ids.

  Tokens not in `vocab` become `<unk>`, with a warning that counts them and names `name`.
  """
  token_to_id = {token: i for i, token in enumerate(vocab)}
  unk = token_to_id.get(UNK, 0)
  ids = np.fromiter((token_to_id.get(t, -1) for t in tokens), dtype=np.int32, count=len(tokens))
  missing = int((ids < 0).sum())
  if missing:
    logging.warning("%s: %d of %d %s are not in the vocabulary; mapped to %s",
                    name, missing, len(tokens), unit, UNK)
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
    raise UserError(f"no text files in {data_dir} and {e}: pass --text_file=PATH, or "
                    "--data_dir holding train.txt, valid.txt, test.txt; for PTB download "
                    "simple-examples.tgz and pass --data_dir=.../simple-examples/data (or set "
                    "$PTB_DATA_DIR)") from None
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


def resolve_text_file(text_file, data_dir, level):
  """The text file to read: `text_file` if given; for characters with neither a text file nor
  a data directory, tiny Shakespeare (`tiny_shakespeare`); otherwise '' (read `data_dir`).

  Args:
    text_file, data_dir: the --text_file and --data_dir flags ('' when unset).
    level: "word" (PTB is the default text) or "char" (tiny Shakespeare is).
  """
  if text_file or data_dir or level != "char":
    return text_file
  return str(tiny_shakespeare())


def tiny_shakespeare():
  """The path of tiny Shakespeare: $SHAKESPEARE_FILE, else the per-user cache's copy, which is
  downloaded (and its sha256 checked) the first time.

  Raises:
    UserError: $SHAKESPEARE_FILE names no file; or the file is absent and cannot be fetched
      (offline), saying how to provide it; or the download is corrupt (then it is deleted).
  """
  named = os.environ.get(SHAKESPEARE_FILE, "")
  if named:
    if not pathlib.Path(named).expanduser().is_file():
      raise UserError(f"${SHAKESPEARE_FILE}={named} is not a file: point it at tiny "
                      "Shakespeare's input.txt, or unset it to use the downloaded copy")
    return pathlib.Path(named).expanduser()
  return data_dirs.fetch_once(
      data_dirs.CACHE_ROOT / "shakespeare" / "input.txt", SHAKESPEARE_URL, SHAKESPEARE_SHA256,
      "tiny Shakespeare", f"pass --text_file=FILE, put input.txt at "
      f"{data_dirs.CACHE_ROOT / 'shakespeare' / 'input.txt'}, or set ${SHAKESPEARE_FILE}=FILE")


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
