"""The translation tasks' data: sentence pairs as ids of two vocabularies, and padded batches.

Tasks (`load`, by `config.task`):
  spa-eng  a file of tab-separated pairs, one a line, `A<TAB>B`: spa.txt is English<TAB>Spanish
           (118,964 lines from Tatoeba via manythings.org, the tutorial's file). The source is
           column B and the target column A, Spanish -> English as the tutorial translates;
           `reverse_pairs` swaps them. Any file of that shape goes through the same reader.
           Without a file named, spa.txt is read from the per-user cache, fetched there once
           from the tutorial's spa-eng.zip (`spa_eng_file`).
  dates    dates written the ways people write them -> ISO 8601 (seq2seq/dates.py).
  reverse  random strings of 20 symbols (a-t), lengths uniform in [min_length, max_length] ->
           the string reversed: accuracy against length, with and without attention.

Standardisation (`tf_standardize`): written once in TensorFlow's string ops, so the export
reads raw strings in its graph with TensorFlow alone, exactly as training read them:
  word  lower-case (Unicode); a space either side of . ? ! , ¿ ¡ (tokens of their own); every
        other character that is not a letter is dropped (digits, apostrophes, hyphens, quotes:
        "I'm" -> "im", as the tutorial); whitespace collapsed to one space; stripped.
            "¿Todavía están en casa?" -> "¿ todavía están en casa ?"
        Deviation: the tutorial keeps a-z only, after tensorflow_text's NFKD has split the
        accents off ("todavía" -> "todavia"). Core TensorFlow has no Unicode normalisation and
        the export must run without tensorflow_text, so accented letters stay letters. spa.txt
        is precomposed (no combining marks); a decomposed input loses its marks ("í" -> "i").
  word_bare  as word, but . ? ! , ¿ ¡ are dropped too: words only. What Keras' TextVectorization
        ("lower_and_strip_punctuation") leaves of spa.txt after Géron's removal of ¡ and ¿ (his
        Hands-On Machine Learning, 3rd ed., ch. 16), so that token accuracy counts words only,
        as his does (a "." is an easy token to get right). Keras keeps digits; spa.txt's few
        sentences with digits are the one difference.
            "¿Todavía están en casa?" -> "todavía están en casa"
  char  lower-case, whitespace collapsed, stripped; every character kept (dates need "/", "-").
Tokens: `word` and `word_bare` split on the space, `char` takes Unicode code points (as tf.strings.unicode_split).

Vocabulary (one per side, of the training split only): [PAD] 0, [UNK] 1, [START] 2, [END] 3,
then the tokens by descending count, ties in code-point order, `max_size` ids in all; others
read as [UNK]:   train targets "b a", "b c"  ->  [PAD] [UNK] [START] [END] b a c

Splits of a pairs file: 80% train, 10% validation, 10% test, by a sha256 of (seed, column A
word-standardised). One English sentence has up to dozens of Spanish translations (102,904
distinct English sentences), so every pair of one English sentence lands in the same split: no
test sentence was seen in training, either as target or (reverse_pairs) as source. The tutorial
cuts 80/20 with no test split; we report BLEU on a third split that chose nothing. With
`split_unit=pair` (the `geron` config) the hash is of the whole line instead: a random cut of
the pairs, as Géron's, where an English sentence can have translations in two splits.

Batches (`batches`): sources as they are, targets shifted around [START] and [END]; each
batch padded with [PAD] = 0 to its own longest row; masks are `ids != PAD_ID`. Three pairs:

    pairs     ("a b", "x")    ("c", "y z")    ("d e f", "w")
    source    [[a b 0]        decoder input  [[S x 0]        decoder target  [[x E 0]
               [c 0 0]                        [S y z]                         [y z E]
               [d e f]]                       [S w 0]]                        [w E 0]]

Training batches (`seed` given) are shuffled per (seed, epoch); each run of BUCKET_BATCHES
batches' examples is then sorted by length before it is cut, and the batches shuffled, so a
batch holds sentences of about one length (less padding) and the order is still random.
"""
import collections
import hashlib
import json
import pathlib

import numpy as np
import tensorflow as tf
from absl import logging

from common import data_dir as data_dirs
from common.errors import UserError
from seq2seq import dates
from seq2seq.configs import LEVELS, SPLIT_UNITS

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
RESERVED = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(len(RESERVED))
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.9)   # where validation and test start in the hash's [0, 1)
REVERSE_SYMBOLS = "abcdefghijklmnopqrst"
BUCKET_BATCHES = 20
# What Python's str.split() splits on (str.isspace); RE2's \s is ASCII whitespace only.
WHITESPACE = r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}]"
# The tutorial's download, and the sha256 of its member spa-eng/spa.txt (the data's
# SOURCES.md): the text is checked, not the zip around it.
SPA_ENG_URL = "https://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip"
SPA_ENG_MEMBER = "spa-eng/spa.txt"
SPA_ENG_SHA256 = "6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c"


def tf_standardize(texts, level="word"):
  """The standardisation of the module docstring: a string tensor -> one of the same shape."""
  texts = tf.strings.lower(texts, encoding="utf-8")
  if level == "word":
    texts = tf.strings.regex_replace(texts, r"[.?!,¿¡]", r" \0 ")
    texts = tf.strings.regex_replace(texts, WHITESPACE, " ")
    texts = tf.strings.regex_replace(texts, r"[^\p{L} .?!,¿¡]", "")
  elif level == "word_bare":
    texts = tf.strings.regex_replace(texts, WHITESPACE, " ")
    texts = tf.strings.regex_replace(texts, r"[^\p{L} ]", "")
  texts = tf.strings.regex_replace(texts, WHITESPACE + "+", " ")
  return tf.strings.strip(texts)


def standardize(texts, level="word"):
  """Python strings through `tf_standardize`, the one definition training and export share."""
  if not texts:
    return []
  standardized = tf_standardize(tf.constant(list(texts), tf.string), level).numpy()
  return [text.decode("utf-8") for text in standardized]


def tf_tokenize(texts, level="word"):
  """Standardised string tensor [N] -> ragged string tokens [N, tokens], as `tokens_of`."""
  if level == "char":
    return tf.strings.unicode_split(texts, "UTF-8")
  return tf.strings.split(texts)


def tokens_of(text, level="word"):
  """The tokens of one standardised string: words, or Unicode code points."""
  return list(text) if level == "char" else text.split()


class Vocabulary:
  """Tokens <-> ids of one side (source or target) of a task; see the module docstring."""

  def __init__(self, tokens, level="word"):
    check_level(level)
    if tuple(tokens[:len(RESERVED)]) != RESERVED:
      raise ValueError(f"a vocabulary starts with {RESERVED}, not {tuple(tokens[:4])}")
    self.tokens = list(tokens)
    self.level = level
    self._ids = {token: i for i, token in enumerate(self.tokens)}

  @classmethod
  def build(cls, texts, level="word", max_size=None):
    """The vocabulary of standardised `texts`: reserved ids, then by count, then token."""
    if max_size is not None and max_size <= len(RESERVED):
      raise UserError(f"vocab_size={max_size} leaves no room for a token after the "
                      f"{len(RESERVED)} reserved ones: pass --vocab_size={len(RESERVED) + 1} "
                      "or more")
    counts = collections.Counter(t for text in texts for t in tokens_of(text, level))
    ordered = sorted((t for t in counts if t not in RESERVED), key=lambda t: (-counts[t], t))
    kept = ordered if max_size is None else ordered[:max_size - len(RESERVED)]
    return cls(list(RESERVED) + kept, level)

  def __len__(self):
    return len(self.tokens)

  def save(self, path):
    """Writes the tokens and the level as JSON (a run directory's vocabulary)."""
    text = json.dumps({"level": self.level, "tokens": self.tokens}, ensure_ascii=False)
    pathlib.Path(path).write_text(text + "\n", encoding="utf-8")

  @classmethod
  def load(cls, path):
    """The vocabulary `save` wrote."""
    saved = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    return cls(saved["tokens"], saved["level"])

  def encode(self, text):
    """int32 ids of a standardised string's tokens ([UNK] for unknown; no [START]/[END])."""
    tokens = tokens_of(text, self.level)
    return np.fromiter((self._ids.get(t, UNK_ID) for t in tokens), np.int32, len(tokens))

  def decode(self, ids):
    """The string of `ids`, up to the first [END]; [PAD] and [START] are left out."""
    tokens = []
    for i in np.asarray(ids).tolist():
      if i == END_ID:
        break
      if i not in (PAD_ID, START_ID):
        tokens.append(self.tokens[i])
    return ("" if self.level == "char" else " ").join(tokens)


def check_level(level):
  if level not in LEVELS:
    raise UserError(f"level {level!r} is unknown: use --level=word or --level=char")


def load(config, pairs_file=""):
  """The standardised (source, target) pairs of `config.task`, {split: [(source, target)]}.

  Args:
    config: a seq2seq config (task, level, data_seed, reverse_pairs, the split sizes and, for
      the reverse task, min_length and max_length).
    pairs_file: the tab-separated pairs of the spa-eng task (spa.txt); not read otherwise.
  """
  check_level(config.level)
  sizes = (config.train_size, config.validation_size, config.test_size)
  if config.task == "spa-eng":
    pairs_file = pairs_file or spa_eng_file()
    return load_pairs(pairs_file, config.level, config.reverse_pairs, config.data_seed, sizes,
                      config.split_unit)
  if config.task == "dates":
    stream = dates.pairs(sum(sizes), config.data_seed)
  elif config.task == "reverse":
    stream = reversal_pairs(sum(sizes), config.data_seed, config.min_length, config.max_length)
  else:
    raise UserError(f"task {config.task!r} is unknown: use --task=spa-eng, dates or reverse")
  sources = standardize([source for source, _ in stream], config.level)
  return split_stream(list(zip(sources, [target for _, target in stream])), sizes)


def spa_eng_file():
  """The path of the tutorial's spa.txt in the per-user cache, fetched there (from its
  spa-eng.zip, the text's sha256 checked) the first time.

  Raises:
    UserError: offline with no copy, saying how to provide one; or a download whose spa.txt
      is not the tutorial's (nothing is kept).
  """
  return data_dirs.fetch_once(
      data_dirs.CACHE_ROOT / "spa-eng" / "spa.txt", SPA_ENG_URL, SPA_ENG_SHA256, "spa.txt",
      "pass --pairs_file=FILE (tab-separated English<TAB>Spanish lines), put spa.txt at "
      f"{data_dirs.CACHE_ROOT / 'spa-eng' / 'spa.txt'}, or set $SPA_ENG_FILE=FILE",
      member=SPA_ENG_MEMBER)


def split_stream(pairs, sizes):
  """{split: pairs} of a generated stream of distinct pairs: test first, then validation, then
  train, so that a larger train split leaves the test split as it was."""
  train_size, validation_size, test_size = sizes
  if min(sizes) < 1 or len(pairs) < sum(sizes):
    raise UserError(f"split sizes {sizes} (train, validation, test) need at least one pair "
                    "each: pass --train_size, --validation_size, --test_size of 1 or more")
  return {"train": pairs[test_size + validation_size:sum(sizes)],
          "validation": pairs[test_size:test_size + validation_size],
          "test": pairs[:test_size]}


def read_pairs(path):
  """The (column A, column B) pairs of a tab-separated UTF-8 file, as they are written.

  Raises:
    UserError: a missing, unreadable, empty or non-UTF-8 file, or a line without exactly one
      tab or with an empty side, naming the line.
  """
  text = _read_utf8(pathlib.Path(path))
  lines = text.split("\n")
  if lines[-1] == "":
    lines.pop()  # the newline that ends the last line
  pairs = []
  for number, line in enumerate(lines, 1):
    columns = line.removesuffix("\r").split("\t")
    if len(columns) != 2:
      hint = (" (manythings.org's files add an attribution column: keep the first two, "
              "cut -f1,2)" if len(columns) == 3 else "")
      raise UserError(f"{path}, line {number}: {len(columns) - 1} tabs, expected exactly one "
                      f"between the two sentences{hint}: fix the line or remove it")
    if not columns[0].strip() or not columns[1].strip():
      raise UserError(f"{path}, line {number}: a sentence is empty: give both sides of the "
                      "pair or remove the line")
    pairs.append((columns[0], columns[1]))
  return pairs


def _read_utf8(path):
  """The text of a UTF-8 file; UserError for a missing, unreadable, blank or non-UTF-8 one."""
  try:
    raw = path.read_bytes()
  except FileNotFoundError:
    raise UserError(f"{path} does not exist: check the path (--pairs_file)") from None
  except OSError as e:
    raise UserError(f"cannot read {path} ({e.strerror}): pass a readable file of "
                    "tab-separated pairs (--pairs_file)") from None
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    raise UserError(f"{path} is not UTF-8 text (invalid byte at offset {e.start}, line {line}):"
                    " pass a UTF-8 file (convert it: iconv -t UTF-8)") from None
  if not text.strip():
    raise UserError(f"{path} is empty: pass a file of tab-separated pairs, one a line")
  return text


def load_pairs(path, level="word", reverse=False, seed=0, sizes=(0, 0, 0), unit="sentence"):
  """{split: [(source, target)]}, standardised, of a pairs file (module docstring).

  Args:
    path: the tab-separated pairs, `A<TAB>B` (spa.txt: English<TAB>Spanish).
    level: "word" or "char", the standardisation (and later the tokens).
    reverse: False: B -> A (Spanish -> English, the tutorial's); True: A -> B.
    seed: which pairs fall in which split.
    sizes: (train, validation, test): each split's pairs, a fixed random sample of that many
      kept in file order when the split has more; 0 keeps them all.
    unit: "sentence": every pair of one column-A sentence in the same split; "pair": each
      pair on its own (a random cut: a sentence can have translations in two splits).
  """
  if unit not in SPLIT_UNITS:
    raise UserError(f"split unit {unit!r} is unknown: use --split_unit=sentence or pair")
  pairs = read_pairs(path)
  column_a = standardize([a for a, _ in pairs], level)
  column_b = standardize([b for _, b in pairs], level)
  # The split is by the word-standardised English side whatever the level: the same splits.
  keys = column_a if level == "word" else standardize([a for a, _ in pairs], "word")
  if unit == "pair":
    keys = [f"{a}\t{b}\t{line}" for line, ((a, b), _) in enumerate(zip(pairs, keys))]
  splits = {split: [] for split in SPLITS}
  dropped = 0
  for a, b, key in zip(column_a, column_b, keys):
    if not a or not b:
      dropped += 1  # nothing left of a side, e.g. a sentence of digits only
      continue
    splits[split_of(key, seed)].append((a, b) if reverse else (b, a))
  if dropped:
    logging.warning("%s: %d of %d pairs have a side that standardises to nothing (no letters);"
                    " left out", path, dropped, len(pairs))
  for split, size in zip(SPLITS, sizes):
    if not splits[split]:
      raise UserError(f"{path}: no pair falls in the {split} split ({len(pairs)} pairs): use "
                      "a file of more pairs (tens at least)")
    splits[split] = _sample(splits[split], size, seed)
  return splits


def split_of(key, seed):
  """train, validation or test, by a sha256 of (seed, key): stable across runs and machines,
  unlike Python's hash() of a string."""
  digest = hashlib.sha256(f"{seed}\t{key}".encode("utf-8")).digest()
  fraction = int.from_bytes(digest[:8], "big") / 2.0**64
  return SPLITS[int(np.searchsorted(SPLIT_FRACTIONS, fraction, side="right"))]


def _sample(pairs, size, seed):
  """`size` of `pairs` at random (seeded), in their order; all of them when size is 0."""
  if not size or size >= len(pairs):
    return pairs
  kept = np.sort(np.random.default_rng(seed).choice(len(pairs), size, replace=False))
  return [pairs[i] for i in kept]


def reversal_pairs(count, seed=0, min_length=3, max_length=80):
  """`count` distinct (string, string reversed) pairs over REVERSE_SYMBOLS, their lengths
  uniform in [min_length, max_length]."""
  if not 1 <= min_length <= max_length:
    raise UserError(f"min_length={min_length}, max_length={max_length}: the reverse task needs "
                    "1 <= --min_length <= --max_length")
  possible = sum(len(REVERSE_SYMBOLS) ** n for n in range(min_length, max_length + 1))
  if 2 * count > possible:
    raise UserError(f"{count} distinct strings of length {min_length}-{max_length} are too "
                    "many to draw (at most half of those that exist): raise --max_length")
  rng = np.random.default_rng(seed)
  seen, pairs = set(), []
  while len(pairs) < count:
    symbols = rng.integers(len(REVERSE_SYMBOLS), size=rng.integers(min_length, max_length + 1))
    string = "".join(REVERSE_SYMBOLS[i] for i in symbols)
    if string not in seen:
      seen.add(string)
      pairs.append((string, string[::-1]))
  return pairs


def vocabularies(train_pairs, level="word", vocab_size=None):
  """(source, target) Vocabulary of the training pairs, each of at most `vocab_size` ids."""
  return (Vocabulary.build([source for source, _ in train_pairs], level, vocab_size),
          Vocabulary.build([target for _, target in train_pairs], level, vocab_size))


def encode(pairs, source_vocab, target_vocab):
  """[(source ids, target ids)], int32 arrays without [START]/[END] (`batches` adds them)."""
  return [(source_vocab.encode(source), target_vocab.encode(target)) for source, target in pairs]


def batch_order(lengths, batch_size, seed=None, epoch=0):
  """Example indices in the order `batches` takes them: as given when `seed` is None, else
  shuffled per (seed, epoch), sorted by length in runs of BUCKET_BATCHES batches, batches
  shuffled; the one short batch, if any, last.

  Args:
    lengths: int [examples, 2]: source and target length of each example.
  """
  lengths = np.asarray(lengths).reshape(-1, 2)
  if seed is None:
    return np.arange(len(lengths))
  rng = np.random.default_rng([seed, epoch])
  order = rng.permutation(len(lengths))
  run = batch_size * BUCKET_BATCHES
  groups = []
  for start in range(0, len(order), run):
    part = order[start:start + run]
    part = part[np.lexsort((lengths[part, 1], lengths[part, 0]))]
    groups += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
  full = [group for group in groups if len(group) == batch_size]
  short = [group for group in groups if len(group) < batch_size]
  return np.concatenate([full[i] for i in rng.permutation(len(full))] + short)


def batches(examples, batch_size, seed=None, epoch=0):
  """A tf.data.Dataset of ((source, decoder_input), decoder_target), int32 [batch, length]
  tensors padded per batch with [PAD] (module docstring's diagram).

  Args:
    examples: [(source ids, target ids)] as `encode` returns them.
    batch_size: rows per batch; the last batch may have fewer.
    seed: None keeps the examples' order (evaluation: outputs line up with the pairs); an int
      shuffles and groups by length (training), the same order for the same (seed, epoch).
    epoch: which epoch's order.
  """
  if not examples:
    raise UserError("no examples to batch: the split is empty")
  lengths = [(len(source), len(target)) for source, target in examples]
  order = batch_order(lengths, batch_size, seed, epoch)
  sources = [examples[i][0] for i in order]
  start, end = np.int32([START_ID]), np.int32([END_ID])
  decoder_inputs = [np.concatenate([start, examples[i][1]]) for i in order]
  decoder_targets = [np.concatenate([examples[i][1], end]) for i in order]
  columns = tuple(_ragged(rows) for rows in (sources, decoder_inputs, decoder_targets))
  return tf.data.Dataset.from_tensor_slices(columns).batch(batch_size).map(_padded)


def _ragged(rows):
  """A ragged int32 tensor [len(rows), None] of 1-D int32 arrays."""
  values = np.concatenate(rows).astype(np.int32) if rows else np.zeros([0], np.int32)
  return tf.RaggedTensor.from_row_lengths(values, [len(row) for row in rows])


def _padded(source, decoder_input, decoder_target):
  """Ragged rows -> dense, padded with [PAD] = 0 to the batch's longest row."""
  return (source.to_tensor(PAD_ID), decoder_input.to_tensor(PAD_ID)), \
      decoder_target.to_tensor(PAD_ID)
