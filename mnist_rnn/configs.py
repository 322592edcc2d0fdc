"""Configurations: the tutorial's model and a tiny one for tests. Every config has every field.

The `--model` flag picks one (`--config` is its alias) and any field can be overridden by a
flag of its own name (`--epochs=3`, `--cell=gru`). A config is what a run computes
(common/loop.py): the model, the schedule and the arithmetic. The learning-rate schedule is
`learning_rate(config, epoch)` below.
"""
import dataclasses

from common import loop

CELLS = ("lstm", "gru", "rnn")
CHOICES = {"cell": CELLS, "lstm": ("auto", "reference", "fast", "keras"),
           "precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16")}


@dataclasses.dataclass(frozen=True)
class TutorialConfig:
  """The TensorFlow-Examples recurrent_network tutorial: one LSTM of 128 units, Adam 0.001."""
  cell: str = "lstm"  # lstm, gru or rnn (a plain tanh RNN)
  hidden_size: int = 128
  num_layers: int = 1
  bidirectional: bool = False
  batch_size: int = 128
  learning_rate: float = 0.001
  # At the tutorial's constant rate the test accuracy swings by +-0.2% from epoch to epoch
  # (98.35-98.69% over epochs 11-15, measured); halving the rate each of the last epochs
  # settles it. lr_decay=1 gives the tutorial's constant rate.
  lr_decay: float = 0.5
  lr_decay_start: int = 8
  # The tutorial takes 10,000 steps of 128 (about 21 epochs); 12 epochs reach 98.5% test
  # accuracy and keep the default run under 10 minutes on a 2-core CPU.
  epochs: int = 12
  max_steps_per_epoch: int = 0  # 0: the whole training set each epoch; > 0 cuts epochs short
  seed: int = 0
  jit_compile: bool = False
  # How the LSTM runs, not what it computes (common/lstm.py): reference (TensorFlow's
  # autodiff, the yardstick), fast (the written-out passes; fastest on a CPU) or keras
  # (keras.layers.LSTM, cuDNN on a GPU); auto: keras on a GPU without XLA, else fast
  # (common/devices.py). config.json records what auto chose.
  lstm: str = "auto"
  # The fast LSTM: the batch's rows as this many independent chains of steps, which a CPU's
  # cores run in parallel (0: common.devices' choice, 2 on a CPU without XLA, else 1). The
  # same numbers for every row, only faster.
  row_groups: int = 0
  # The fast LSTM on a CPU without XLA: each time step's gate arithmetic as one op each way,
  # compiled for this CPU on first use (common/cell_op.py; TensorFlow's ops where it cannot
  # be built). Exports use TensorFlow's ops.
  cell_op: bool = True
  # auto: mixed_bfloat16 on a CPU fast at it (AVX-512 BF16 or AMX: the accuracy of float32,
  # README), else float32 (TF32 on a GPU: common/devices.py).
  precision: str = "auto"


@dataclasses.dataclass(frozen=True)
class TestConfig(TutorialConfig):
  """Small enough that an end-to-end run (one short epoch, the full test set) takes seconds."""
  hidden_size: int = 16
  batch_size: int = 32
  epochs: int = 1
  max_steps_per_epoch: int = 20


CONFIGS = {"tutorial": TutorialConfig, "test": TestConfig}


def get_config(name, **overrides):
  """The named config with `overrides` (field -> value; None means keep the default)."""
  config = CONFIGS[name]()
  return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def learning_rate(config, epoch):
  """The tutorial's constant rate, then times `lr_decay` each epoch after `lr_decay_start`
  (`epoch` counts from 0)."""
  return loop.decayed_rate(config.learning_rate, config.lr_decay, config.lr_decay_start, epoch)
