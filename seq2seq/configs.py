"""Configurations: Spanish -> English, dates, the reversal sweep, and a tiny one for tests.

Every config has the same fields (a field a task does not read is documented as such); the
`--model` flag picks one and any field can be overridden by a flag of its own name
(`--attention=luong`, `--epochs=2`).
"""
import dataclasses

TASKS = ("spa-eng", "dates", "reverse")
LEVELS = ("word", "word_bare", "char")
ATTENTIONS = ("none", "bahdanau", "luong")
CELLS = ("lstm", "gru")
SPLIT_UNITS = ("sentence", "pair")


@dataclasses.dataclass(frozen=True)
class SpaEngConfig:
  """Spanish -> English on spa.txt, the TensorFlow tutorial's task and sizes (embedding and
  units 256, 5,000 words a side, batch 64), with Bahdanau's attention."""
  task: str = "spa-eng"         # spa-eng (a pairs file), dates, or reverse (seq2seq/data.py)
  # word, word_bare (no punctuation tokens) or char (code points): the tokens and the
  # standardisation (seq2seq/data.py)
  level: str = "word"
  reverse_pairs: bool = False   # spa-eng: the file's first column as source (English -> Spanish)
  data_seed: int = 0            # the splits and generated data: the same test set every run
  # spa-eng: what falls into one split, by a hash (seq2seq/data.py): `sentence`, every pair of
  # one English sentence (no test sentence seen in training), or `pair`, each pair on its own
  # (a random cut, as Géron's)
  split_unit: str = "sentence"
  seed: int = 0                 # initialisation and the batches' order
  # Pairs per split: generated (dates, reverse), or a random sample of the split (spa-eng;
  # 0: all of it, about 95,000 / 12,000 / 12,000).
  train_size: int = 0
  validation_size: int = 0
  test_size: int = 0
  min_length: int = 1           # reverse: the shortest string drawn (other tasks: unread)
  # The longest output the decoder writes before [END] (reverse: also the longest string
  # drawn). spa.txt's longest sentences are 49 tokens (English) and 51 (Spanish).
  max_length: int = 60
  attention: str = "bahdanau"   # none (Cho et al. 2014), bahdanau (additive), luong (dot)
  cell: str = "gru"             # gru (the tutorial's), or lstm
  embedding_size: int = 256
  units: int = 256              # the encoder's (each direction) and the decoder's
  dropout: float = 0.1          # on embeddings and before the softmax; the tutorial has none
  vocab_size: int = 5000        # ids per side, the 4 reserved ones included (the tutorial's)
  batch_size: int = 64
  learning_rate: float = 1e-3   # Adam's
  # ~1,490 steps an epoch, 6.5 minutes on 2 CPU cores that another training run shared, so 4
  # fit in 30 minutes (measured with a plain Adam loop: greedy BLEU 26.5 after one epoch, on
  # the first 2,000 validation pairs, which are short ones: spa.txt is sorted by length).
  epochs: int = 4
  beam_width: int = 4           # evaluation and translation; 1 is greedy
  length_penalty: float = 0.6   # GNMT's alpha (seq2seq/decoding.py); Tensor2Tensor's 0.6


@dataclasses.dataclass(frozen=True)
class GeronConfig(SpaEngConfig):
  """English -> Spanish, 1,000 ids a side, words without punctuation tokens: Géron's yardstick
  on the same file (Hands-On Machine Learning, 3rd ed., ch. 16: teacher-forced validation
  token accuracy 0.676 without attention, 0.708 with), measured his way; the model is ours."""
  reverse_pairs: bool = True
  level: str = "word_bare"      # his TextVectorization strips punctuation (seq2seq/data.py)
  # His split is a random cut of the shuffled pairs (100,000 train, 18,964 validation), so a
  # validation sentence's English side has often been seen in training with another Spanish
  # one; `pair` cuts so (80/10/10 of the pairs).
  split_unit: str = "pair"
  vocab_size: int = 1000
  # Géron trains 10 epochs of batch 32. Validation token accuracy without attention rose
  # 57.9, 62.3, 64.2% over our first 3 (with: 67.4, 70.4, 71.2%), so 6.
  epochs: int = 6


@dataclasses.dataclass(frozen=True)
class DatesConfig(SpaEngConfig):
  """Dates in 25 formats -> ISO 8601, a character at a time: exact match on 10,000 test dates."""
  task: str = "dates"
  level: str = "char"
  train_size: int = 50_000
  validation_size: int = 5_000
  test_size: int = 10_000
  max_length: int = 10          # an ISO date is 10 characters; one more is already wrong
  attention: str = "luong"
  cell: str = "lstm"
  embedding_size: int = 32
  units: int = 128
  dropout: float = 0.0
  vocab_size: int = 100         # more than the 42 characters the formats use
  # The app's first run: 5,000 validation dates 100% exact from epoch 2 on (99.90% once, at
  # epoch 5); an epoch takes 46 s on 2 CPU cores alone. 6 keep a margin inside 10 minutes.
  epochs: int = 6
  beam_width: int = 1           # one right answer: greedy is enough
  length_penalty: float = 0.0


@dataclasses.dataclass(frozen=True)
class ReverseConfig(SpaEngConfig):
  """Reversing strings of 3-80 symbols: exact match against length, the attention sweep."""
  task: str = "reverse"
  level: str = "char"
  train_size: int = 50_000
  validation_size: int = 5_000
  test_size: int = 10_000
  min_length: int = 3
  max_length: int = 80
  cell: str = "lstm"
  embedding_size: int = 32
  units: int = 128
  dropout: float = 0.0
  vocab_size: int = 24          # 20 symbols and the 4 reserved ids
  # With attention, 313 steps (20,000 strings) already give 96% validation token accuracy; 3
  # epochs of 50,000 keep both runs of the sweep inside its 30 minutes.
  epochs: int = 3
  beam_width: int = 1
  length_penalty: float = 0.0


@dataclasses.dataclass(frozen=True)
class TestConfig(ReverseConfig):
  """Tiny: reverses strings of 2-6 symbols; an end-to-end run takes seconds."""
  train_size: int = 64
  validation_size: int = 16
  test_size: int = 16
  min_length: int = 2
  max_length: int = 6
  cell: str = "lstm"
  embedding_size: int = 8
  units: int = 16
  batch_size: int = 16
  learning_rate: float = 1e-2
  epochs: int = 1
  beam_width: int = 2


CHOICES = {"task": TASKS, "level": LEVELS, "attention": ATTENTIONS, "cell": CELLS,
           "split_unit": SPLIT_UNITS}
CONFIGS = {"spa_eng": SpaEngConfig, "geron": GeronConfig, "dates": DatesConfig,
           "reverse": ReverseConfig, "test": TestConfig}
FIELDS = [field.name for field in dataclasses.fields(SpaEngConfig)]


def get_config(name, **overrides):
  """The named config with `overrides` (field -> value; None means keep the default)."""
  config = CONFIGS[name]()
  return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


# The values of fields that runs had before config.json recorded them.
BEFORE_RECORDED = {"split_unit": "sentence"}


def upgrade(saved):
  """A config.json of an older run, in today's fields (BEFORE_RECORDED filled in)."""
  return {**BEFORE_RECORDED, **saved}
