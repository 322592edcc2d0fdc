"""Configurations: the tutorial's model and a tiny one for tests. Every config has every field."""
import dataclasses

CELLS = ("lstm", "gru", "rnn")


@dataclasses.dataclass(frozen=True)
class Config:
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
  log_every_steps: int = 100
  checkpoint_every_steps: int = 0  # 0: checkpoint at the end of each epoch only
  seed: int = 0
  use_synthetic_data: bool = False
  jit_compile: bool = False
  # lstm cells: common.lstm.LSTM (input projection outside the time loop, loop unrolled)
  # instead of keras.layers.LSTM; the same model, faster on CPU (ptb/benchmark numbers).
  fused_lstm: bool = True
  # Fused LSTM cells: the batch's rows run as this many independent chains of steps, which a
  # CPU's cores run in parallel (common.lstm; 0: common.lstm.default_row_groups(), 2 on a CPU
  # without XLA, else 1). The same numbers for every row, only faster.
  row_groups: int = 0
  # Fused LSTM cells on a CPU without XLA: each time step's gate arithmetic as one op each
  # way, compiled for this CPU on first use (common/cell_op.py; TensorFlow's ops where it
  # cannot be built). 1.2x faster train step, measured; exports use TensorFlow's ops.
  cell_op: bool = True
  # auto: mixed_bfloat16 where the hardware is fast at it (1.30x the float32 train step on
  # our 2-core AVX-512 BF16 CPU, 98.60% against 98.63% test accuracy, measured), else float32.
  precision: str = "auto"


TutorialConfig = Config()

# Small enough that an end-to-end run (one short epoch, the full test set) takes seconds.
TestConfig = Config(hidden_size=16, batch_size=32, epochs=1, max_steps_per_epoch=20,
                    log_every_steps=10)

CONFIGS = {"tutorial": TutorialConfig, "test": TestConfig}
