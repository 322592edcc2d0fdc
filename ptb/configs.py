"""The four configurations of TensorFlow's ptb_word_lm tutorial (Zaremba et al. 2014, Table 1).

Every config has the same fields; the `--model` flag picks one and any field can be
overridden by a flag of its own name (`--epochs=1`, `--hidden_size=300`; `--max_max_epoch`,
the tutorial's name, is `--epochs`). A config is what a run computes (common/loop.py): the
model, the schedule and the arithmetic. The learning-rate schedule is
`learning_rate(config, epoch)` below.
"""
import dataclasses

from common import loop


@dataclasses.dataclass(frozen=True)
class SmallConfig:
  """Non-regularised 2x200 LSTM: tutorial 37.99 / 121.39 / 115.91 (train / valid / test)."""
  init_scale: float = 0.1       # every weight starts uniform in [-init_scale, init_scale]
  # The embedding's start: uniform (in [-init_scale, init_scale], the tutorial's, as every
  # other weight) or normal (N(0, 1), PyTorch's nn.Embedding; the char config's, README).
  embedding_init: str = "uniform"
  optimizer: str = "sgd"        # sgd (the tutorial's), adam or rmsprop (ptb/optimizer.py)
  learning_rate: float = 1.0    # plain SGD; 1.0 only works because the loss is summed over time
  max_grad_norm: float = 5.0    # clip the global gradient norm
  num_layers: int = 2
  num_steps: int = 20           # truncated BPTT window
  hidden_size: int = 200
  max_epoch: int = 4            # epochs at the full learning rate
  epochs: int = 13              # the tutorial's max_max_epoch
  keep_prob: float = 1.0        # dropout keeps this fraction (1.0: no dropout)
  lr_decay: float = 0.5         # per-epoch factor after max_epoch
  batch_size: int = 20
  vocab_size: int = 10000       # the most frequent training words; the rest read as <unk>
  level: str = "word"           # word: whitespace-split words; char: Unicode code points
  cell: str = "lstm"            # lstm, gru or rnn (a plain tanh RNN), as char-rnn's -model
  # How the LSTM runs, not what it computes (common/lstm.py): reference (TensorFlow's
  # autodiff, the yardstick), fast (the written-out passes; fastest on a CPU) or keras
  # (keras.layers.LSTM: cuDNN on a GPU, the tutorial's rnn_mode=cudnn); auto: keras on a GPU,
  # fast on a CPU (common/devices.py). config.json records what auto chose.
  lstm: str = "auto"
  # The fast LSTM outside XLA on a CPU: the batch's rows as this many independent chains of
  # steps, which the cores run side by side (0: common.devices' choice, ptb.model.ROW_GROUPS
  # there, else 1), and each step's gate arithmetic as one op compiled for this CPU
  # (common/cell_op.py). The same numbers for every row, only faster.
  row_groups: int = 0
  cell_op: bool = True
  # auto: bfloat16_matmuls on a CPU fast at bfloat16 with jit_compile on, else float32 (TF32
  # on a GPU; ptb.model.resolve_precision); config.json records what auto chose.
  precision: str = "auto"
  # XLA fuses the per-step gate arithmetic (PERFORMANCE.md); off by default where the LSTM
  # runs on cuDNN, which XLA cannot compile, and for a model bound by its recurrence (the
  # character models) in float32 on a CPU, where the row groups are faster (common/devices.py).
  jit_compile: bool = True
  seed: int = 0                 # initialisation and dropout

  @property
  def max_max_epoch(self):
    """The tutorial's name for `epochs`."""
    return self.epochs


@dataclasses.dataclass(frozen=True)
class MediumConfig(SmallConfig):
  """Regularised 2x650 LSTM: tutorial 48.45 / 86.16 / 82.07."""
  init_scale: float = 0.05
  num_steps: int = 35
  hidden_size: int = 650
  max_epoch: int = 6
  epochs: int = 39
  keep_prob: float = 0.5
  lr_decay: float = 0.8


@dataclasses.dataclass(frozen=True)
class LargeConfig(SmallConfig):
  """Regularised 2x1500 LSTM: tutorial 37.87 / 82.62 / 78.29."""
  init_scale: float = 0.04
  max_grad_norm: float = 10.0
  num_steps: int = 35
  hidden_size: int = 1500
  max_epoch: int = 14
  epochs: int = 55
  keep_prob: float = 0.35
  lr_decay: float = 1 / 1.15


@dataclasses.dataclass(frozen=True)
class TestConfig(SmallConfig):
  """Tiny model for tests: one layer of 2 units."""
  max_grad_norm: float = 1.0
  num_layers: int = 1
  num_steps: int = 2
  hidden_size: int = 2
  max_epoch: int = 1
  epochs: int = 1


@dataclasses.dataclass(frozen=True)
class CharConfig(SmallConfig):
  """A character-level model of any text (char-rnn's job), chosen by measurement on tiny
  Shakespeare (README): 2 layers with dropout, as char-rnn's larger setting, trained with Adam
  for 15 minutes on a 2-core CPU."""
  level: str = "char"
  # Inputs of unit scale: from the tutorial's uniform +-0.1 the clipped, time-summed loss
  # learns characters slowly (PERFORMANCE.md, "Against a plain PyTorch LSTM").
  embedding_init: str = "normal"
  # Training takes the text's own characters; this is the benchmark's synthetic vocabulary:
  # tiny Shakespeare's 65 characters and <unk>.
  vocab_size: int = 66
  optimizer: str = "adam"       # adaptive, as char-rnn's RMSprop and nanoGPT's AdamW
  learning_rate: float = 2e-3   # char-rnn's
  max_grad_norm: float = 5.0    # char-rnn's grad_clip
  num_layers: int = 2
  num_steps: int = 50           # char-rnn's seq_length
  hidden_size: int = 384
  batch_size: int = 128
  keep_prob: float = 0.75
  max_epoch: int = 6
  epochs: int = 11
  lr_decay: float = 0.7


@dataclasses.dataclass(frozen=True)
class CharLargeConfig(CharConfig):
  """The longer character schedule (README): char-rnn's larger setting, 2 layers of 512 with
  dropout 0.5, for 20 epochs, within an hour on a 2-core CPU."""
  # README's 20-epoch result is from the tutorial's uniform embedding; N(0, 1) is untried here.
  embedding_init: str = "uniform"
  hidden_size: int = 512
  keep_prob: float = 0.5
  max_epoch: int = 10
  epochs: int = 20
  lr_decay: float = 0.8


LEVELS = ("word", "char")
CELLS = ("lstm", "gru", "rnn")
EMBEDDING_INITS = ("uniform", "normal")
PRECISIONS = ("auto", "float32", "bfloat16_matmuls", "mixed_bfloat16", "mixed_float16")
CHOICES = {"level": LEVELS, "cell": CELLS, "lstm": ("auto", "reference", "fast", "keras"),
           "optimizer": ("sgd", "adam", "rmsprop"), "embedding_init": EMBEDDING_INITS,
           "precision": PRECISIONS}
# Fields added after the first runs, with the value every run had before: an older
# config.json is read with these (`upgrade`). Fields recorded later still (precision,
# jit_compile, seed) are not known for older runs, so they are not compared.
BEFORE_RECORDED = {"lstm": "fast", "level": "word", "cell": "lstm", "optimizer": "sgd",
                   "embedding_init": "uniform"}
ALIASES = {"max_max_epoch": "epochs"}  # the tutorial's names

CONFIGS = {"small": SmallConfig, "medium": MediumConfig, "large": LargeConfig,
           "char": CharConfig, "char_large": CharLargeConfig, "test": TestConfig}
FIELDS = [field.name for field in dataclasses.fields(SmallConfig)]


def get_config(name, **overrides):
  """The named config with `overrides` (field -> value; None means keep the default)."""
  config = CONFIGS[name]()
  return dataclasses.replace(config, **{ALIASES.get(k, k): v for k, v in overrides.items()
                                        if v is not None})


def learning_rate(config, epoch):
  """lr for 0-based `epoch`: constant for max_epoch epochs, then decayed each epoch."""
  return loop.decayed_rate(config.learning_rate, config.lr_decay, config.max_epoch, epoch)


def upgrade(saved):
  """A config.json of an older run, in today's fields: `max_max_epoch` became `epochs`,
  `fused_lstm` (true: our LSTM, false: keras.layers.LSTM) became `lstm`, and a field it
  predates has the value runs had then (BEFORE_RECORDED)."""
  saved = {ALIASES.get(name, name): value for name, value in saved.items()}
  if "fused_lstm" in saved:
    saved["lstm"] = "fast" if saved.pop("fused_lstm") else "keras"
  return {**BEFORE_RECORDED, **saved}
