"""What depends on the hardware, decided in one place from the visible devices.

Both apps run the same model everywhere; how it runs is chosen here, from a `Hardware`
description (the visible GPUs, whether the CPU is fast at bfloat16), by pure functions that
the tests call with simulated devices (no GPU, one, two):

  LSTM       auto: keras on a GPU when the steps run without XLA (keras.layers.LSTM and GRU
             are cuDNN's kernels there), else fast (the written-out passes, fastest on a CPU).
  XLA        never around cuDNN: XLA has no kernel for its recurrent op. Where auto picks cuDNN
             the default XLA is turned off; an explicit --lstm=keras --jit_compile on a GPU is
             refused; Keras' layers compiled by XLA run its own loop, not cuDNN.
  precision  auto on a GPU: float32, which TensorFlow runs as TF32 on Ampere and later (its
             matmuls with 10-bit mantissa inputs and float32 sums, on the tensor cores);
             bfloat16 would round more and gain little there, and float16 needs loss scaling,
             which ptb's plain SGD does not do. On a CPU: bfloat16 where it has AVX-512 BF16 or
             AMX, else float32.
  threads,   the fast LSTM's rows in chains (`row_groups`: 2 for mnist_rnn, 4 for ptb, each
  cell op    measured), one thread per op, and the C++ cell op (`common.cell_op`): on a CPU
             without XLA only. A model whose step is bound by its recurrence (ptb's character
             models) runs that way by default in float32 on a CPU, where the chains beat XLA
             (without AVX-512 only in chains of 32 rows or more: MIN_AVX2_CHAIN_ROWS).

`decide` takes a run's config as the user gave it (a `--jit_compile` the user asked for, a run
directory's recorded implementation); `plan` takes settings already fixed (a model's
constructor, the benchmarks).
"""
import dataclasses
import functools
import os

import tensorflow as tf

from common.errors import UserError

IMPLEMENTATIONS = ("reference", "fast", "keras")
CUDNN_CELLS = ("lstm", "gru")  # keras.layers.SimpleRNN has no cuDNN kernel
CELL_OP_PRECISIONS = ("float32", "mixed_bfloat16")  # its kernels are float32 and bfloat16
# Without AVX-512, oneDNN's float32 matmuls of a few rows are slow: ptb's char recipe (batch 32)
# in 4 chains of 8 rows took 108 ms a step with oneDNN capped at AVX2, 92 in 2 chains, 81 under
# XLA; `char` in chains of 32 rows 547 against 649 under XLA (PERFORMANCE.md).
MIN_AVX2_CHAIN_ROWS = 32


@dataclasses.dataclass(frozen=True)
class Hardware:
  """What the decisions depend on.

  gpus: the compute capability of each visible GPU, e.g. ((8, 0),) for one A100.
  cpu_bfloat16: the CPU has AVX-512 BF16 or AMX (bfloat16 matmuls faster than float32).
  cpu_avx512: the CPU has AVX-512 (implied by cpu_bfloat16); else AVX2 at most.
  """
  gpus: tuple = ()
  cpu_bfloat16: bool = False
  cpu_avx512: bool = False

  @property
  def wide_vectors(self):
    return self.cpu_avx512 or self.cpu_bfloat16


def visible():
  """This process's Hardware: TensorFlow's visible physical GPUs and /proc/cpuinfo. It
  initialises no device, so it may come before the process-wide settings."""
  gpus = tuple(tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability")
                     or (0, 0)) for gpu in tf.config.list_physical_devices("GPU"))
  flags = _cpu_flags()
  return Hardware(gpus, "avx512_bf16" in flags or "amx_bf16" in flags, "avx512f" in flags)


@functools.lru_cache(maxsize=None)
def _cpu_flags():
  try:
    with open("/proc/cpuinfo") as f:
      return frozenset(next((line.split(":", 1)[1].split() for line in f
                             if line.startswith("flags")), []))
  except OSError:
    return frozenset()


@dataclasses.dataclass(frozen=True)
class Decisions:
  """How a run runs here. `reasons`: one phrase per decision, for the log."""
  lstm: str               # reference, fast or keras
  jit_compile: bool
  precision: str
  cudnn: bool             # Keras' LSTM and GRU layers may take cuDNN's kernels (use_cudnn)
  row_groups: int         # chains of rows of the fast LSTM (0: no fast LSTM)
  cell_op: bool           # the C++ cell op may run (if it builds: common.cell_op)
  intra_op_threads: int   # threads per op (0: TensorFlow's default, one per core)
  reasons: tuple = ()

  def describe(self):
    return "; ".join(self.reasons)


def runs_cudnn(hardware, lstm, cell, jit_compile):
  """Whether Keras' recurrent layers take cuDNN's kernels: the keras path on a GPU, outside
  XLA (inside it they must run Keras' own loop), for the cells cuDNN has."""
  return bool(hardware.gpus) and lstm == "keras" and cell in CUDNN_CELLS and not jit_compile


def auto_implementation(hardware, jit_compile):
  """What --lstm=auto runs, and why."""
  if hardware.gpus and not jit_compile:
    return "keras", "lstm keras: auto on a GPU (cuDNN's kernels)"
  if hardware.gpus:
    return "fast", "lstm fast: auto on a GPU under XLA, which cannot compile cuDNN's kernels"
  return "fast", "lstm fast: auto without a GPU (the written-out passes, fastest on a CPU)"


def auto_precision(hardware, bfloat16_precision):
  """What --precision=auto is, and why: float32 on a GPU (module docstring);
  `bfloat16_precision` (None: none applies) on a CPU fast at bfloat16; else float32."""
  if hardware.gpus:
    return "float32", "precision float32: auto on a GPU (TF32 matmuls on Ampere and later)"
  if bfloat16_precision and hardware.cpu_bfloat16:
    return bfloat16_precision, f"precision {bfloat16_precision}: auto on a CPU fast at bfloat16"
  return "float32", "precision float32: auto"


def plan(hardware, lstm="auto", cell="lstm", jit_compile=False, precision="auto",
         bfloat16_precision=None, row_groups=None, cell_op=False, why_lstm=None, why_jit=None,
         cpu_row_groups=2):
  """The Decisions for settings already fixed (XLA on or off is not changed).

  Args:
    hardware: a Hardware.
    lstm, cell, jit_compile, precision: the config's fields (lstm and precision may be auto).
    bfloat16_precision: what precision auto is on a CPU fast at bfloat16 (None: float32).
    row_groups: the config's row groups (0: this hardware's), None where it has none (1).
    cell_op: the config allows the C++ cell op.
    why_lstm, why_jit: the reasons `decide` gives, for the log.
    cpu_row_groups: the app's row groups on a CPU without XLA, where the config says 0.
  """
  if lstm == "auto":
    lstm, why_lstm = auto_implementation(hardware, jit_compile)
  cudnn = runs_cudnn(hardware, lstm, cell, jit_compile)
  reasons = [why_lstm or f"lstm {lstm}"]
  if cell != "lstm":
    reasons.append(f"{cell} cell: keras.layers" + (" on cuDNN" if cudnn else ""))
  reasons.append(why_jit or f"XLA {'on' if jit_compile else 'off'}")
  why_precision = f"precision {precision}"
  if precision == "auto":
    precision, why_precision = auto_precision(hardware, bfloat16_precision)
  reasons.append(why_precision)
  groups = 0
  if lstm == "fast" and cell == "lstm":
    # Two chains keep both cores of a small CPU busy; under XLA they only lengthen the compile,
    # and on a GPU a step is a few kernels whatever the batch.
    default = 1 if jit_compile or hardware.gpus else cpu_row_groups
    groups = 1 if row_groups is None else row_groups or default
  use_cell_op = bool(cell_op and groups and not jit_compile and not hardware.gpus
                     and precision in CELL_OP_PRECISIONS)
  threads = 1 if groups > 1 else 0  # the chains are the parallelism (mnist_rnn/model.py)
  if groups > 1:
    reasons.append(f"rows in {groups} chains, one thread per op")
  if use_cell_op:
    reasons.append("the C++ cell op where it builds")
  return Decisions(lstm, jit_compile, precision, cudnn, groups, use_cell_op, threads,
                   tuple(reasons))


def decide(config, hardware, jit_compile_given=False, trained_lstm=None,
           bfloat16_precision=None, trained_jit_compile=None, recurrence_bound=False,
           cpu_row_groups=2):
  """The Decisions for a run's config as the user gave it.

  Args:
    config: the app's config (fields lstm, cell, jit_compile, precision; row_groups and
      cell_op where it has them).
    hardware: a Hardware (`visible()`, or simulated).
    jit_compile_given: --jit_compile was on the command line, not a default (or a string: the
      flag that needs XLA, e.g. "--precision=bfloat16_matmuls"): XLA is kept, so auto takes
      the fast LSTM, and an explicit keras on a GPU is refused, naming that flag.
    trained_lstm: the implementation a run directory being resumed recorded: auto keeps it.
    bfloat16_precision: as `plan`'s.
    trained_jit_compile: the XLA setting a run directory being resumed recorded: kept.
    recurrence_bound: the model's step is bound by its recurrence (`cpu_row_groups` chains of
      rows outside XLA beat XLA in float32 on a CPU, as measured for ptb's character models):
      where the precision comes out float32 on a CPU and the fast LSTM runs, the default XLA
      is turned off; without AVX-512 only where each chain has MIN_AVX2_CHAIN_ROWS rows. A
      --jit_compile the user gave is kept.
    cpu_row_groups: as `plan`'s.

  Raises:
    UserError: --lstm=keras with --jit_compile on a GPU (cuDNN inside XLA).
  """
  lstm, jit_compile, why_lstm, why_jit = config.lstm, config.jit_compile, None, None
  if lstm == "auto" and trained_lstm in IMPLEMENTATIONS:
    lstm, why_lstm = trained_lstm, f"lstm {trained_lstm}: auto keeps what this run trained with"
  elif lstm == "auto":
    lstm, why_lstm = auto_implementation(hardware, jit_compile and jit_compile_given)
  if jit_compile and runs_cudnn(hardware, lstm, config.cell, jit_compile=False):
    if isinstance(jit_compile_given, str):
      raise UserError(f"--lstm=keras runs cuDNN's kernels on a GPU, which XLA cannot compile, "
                      f"and {jit_compile_given} runs only under XLA: pass --lstm=fast, or "
                      "another --precision")
    if jit_compile_given:
      raise UserError("--lstm=keras runs cuDNN's kernels on a GPU, which XLA cannot compile: "
                      "drop --jit_compile (or pass --nojit_compile), or pass --lstm=fast to "
                      "compile the steps with XLA")
    jit_compile, why_jit = False, "XLA off: it cannot compile cuDNN's kernels"
  if (recurrence_bound and jit_compile and not jit_compile_given and not hardware.gpus
      and config.cell == "lstm" and lstm in ("auto", "fast")):
    if trained_jit_compile is not None:
      jit_compile = bool(trained_jit_compile)
      why_jit = f"XLA {'on' if jit_compile else 'off'}: auto keeps what this run trained with"
    elif (plan(hardware, lstm, config.cell, True, config.precision,
               bfloat16_precision).precision == "float32"
          and (hardware.wide_vectors
               or config.batch_size >= MIN_AVX2_CHAIN_ROWS * cpu_row_groups)):
      jit_compile = False
      why_jit = (f"XLA off: a float32 step bound by its recurrence runs faster as "
                 f"{cpu_row_groups} chains of rows")
  return plan(hardware, lstm, config.cell, jit_compile, config.precision, bfloat16_precision,
              getattr(config, "row_groups", None), getattr(config, "cell_op", False),
              why_lstm, why_jit, cpu_row_groups)


# Set (to anything but "" or "0"), TensorFlow's float32 matmuls and convolutions stay float32
# on GPUs of Ampere and later instead of TF32: for the tests, which compare float32 results
# at tight tolerances (tests/conftest.py sets it for themselves and the command lines they
# run). Training keeps TF32.
NO_TF32 = "RNN_TUTORIALS_NO_TF32"


def prepare_gpus():
  """Lets every visible GPU's memory grow as it is used, instead of the first process taking
  nearly all of it (the tests run command lines in processes of their own beside theirs), and
  turns TF32 off where $RNN_TUTORIALS_NO_TF32 asks. `common`'s import calls it, before any
  op; where the devices are initialised already it leaves them as they are."""
  gpus = tf.config.list_physical_devices("GPU")
  for gpu in gpus:
    try:
      tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # the GPUs are initialised: too late, and set as they are
      pass
  if gpus and os.environ.get(NO_TF32, "") not in ("", "0"):
    tf.config.experimental.enable_tensor_float_32_execution(False)
