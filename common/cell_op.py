"""The LSTM cell op of lstm_cell.cc: built for this CPU on first use, cached, loaded.

`load()` compiles common/lstm_cell.cc with the system's C++ compiler ($CXX, else g++) against
the installed TensorFlow's headers, with -march=native, into

    ${XDG_CACHE_HOME:-~/.cache}/rnn_tutorials/ops/lstm_cell-<key>.so

once per source, TensorFlow version, compiler and CPU (the key hashes them); later processes
load the cached library (about 7 s to build, nothing after). Where it cannot be built or
loaded (no compiler, no TensorFlow headers), `load()` logs one warning saying why and returns
None, and the LSTM runs on TensorFlow's own ops: the same model (to float32 rounding), slower.
"""
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile

from absl import logging
import tensorflow as tf

SOURCE = pathlib.Path(__file__).with_name("lstm_cell.cc")
# -march=native: this CPU's vector instructions (TensorFlow's own kernels are built for the
# oldest x86-64 it supports). The math flags let the loops vectorise without changing a
# result: no errno from maths, no floating-point traps; NaN and infinity behave as usual.
OPTIMIZE = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fno-math-errno",
            "-fno-trapping-math", "-fopenmp-simd"]


def cache_dir():
  """Beside the datasets' cache (`common.data_dir`), read when called (tests move it)."""
  root = pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
  return root / "rnn_tutorials" / "ops"


def _cpu():
  """What -march=native depends on: the CPU's model and flags (Linux), else the machine."""
  try:
    lines = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
  except OSError:
    return platform.machine()
  return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))


def _flags():
  return ["-shared", "-fPIC", *OPTIMIZE, *tf.sysconfig.get_compile_flags(),
          *tf.sysconfig.get_link_flags()]


def library_path(compiler):
  """Where the library built by `compiler` for this source text (wherever the checkout is),
  TensorFlow and CPU is cached."""
  key = hashlib.sha256("\0".join([SOURCE.read_text(), tf.__version__, compiler, _cpu(),
                                  *_flags()]).encode()).hexdigest()
  return cache_dir() / f"lstm_cell-{key[:16]}.so"


def build(compiler):
  """Compiles the library into the cache (atomically: to a temporary file, then renamed), unless
  it is there already, and returns its path. Raises OSError or CalledProcessError."""
  path = library_path(compiler)
  if path.exists():
    return path
  path.parent.mkdir(parents=True, exist_ok=True)
  logging.info("Building the LSTM cell op for this CPU (once, a few seconds): %s", path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
  os.close(fd)
  try:
    subprocess.run([compiler, str(SOURCE), "-o", tmp, *_flags()], check=True,
                   capture_output=True, text=True)
    os.chmod(tmp, 0o755)  # mkstemp made it private
    os.replace(tmp, path)  # two processes building at once both end with a whole file
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def available(compute_dtype):
  """Whether layers computing in `compute_dtype` can run the op here: it has CPU kernels for
  float32 and bfloat16 only (on a machine with a GPU it would pull every step onto the CPU),
  and the library must build and load."""
  return (compute_dtype in ("float32", "bfloat16") and not tf.config.list_physical_devices("GPU")
          and load() is not None)


@functools.cache
def load():
  """The loaded op module (`lstm_cell_forward`, `lstm_cell_backward`), or None with one
  warning saying why it could not be built or loaded."""
  compiler = os.environ.get("CXX") or "g++"
  try:
    if shutil.which(compiler) is None:
      raise OSError(f"no C++ compiler {compiler!r} on the PATH (set $CXX)")
    return tf.load_op_library(str(build(compiler)))
  except subprocess.CalledProcessError as error:
    lines = (error.stderr or "").strip().splitlines() or ["no message"]
    reason = f"{compiler} failed: " + next((line for line in lines if "error" in line), lines[-1])
  except (OSError, tf.errors.OpError) as error:
    reason = str(error).strip().splitlines()[0]
  logging.warning("The LSTM cell op is not available (%s); the LSTM runs on TensorFlow's "
                  "ops: the same model, about 1.2x slower on CPU.", reason)
  return None
