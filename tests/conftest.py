"""Shared fixtures: where the real datasets are (CI sets PTB_DATA_DIR and MNIST_DATA_DIR)."""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

# The tests compare float32 results at tight tolerances (fast against reference, ours against
# Keras, one replica against two): on a GPU of Ampere or later they run without TF32, here and
# in the command lines they start, which inherit the variable (common.devices.prepare_gpus).
# Before `common`'s import, which reads it.
os.environ["RNN_TUTORIALS_NO_TF32"] = "1"
# XLA's persistent cache (common/xla_cache.py) in a folder of the test session's, shared by the
# command lines the tests start, so the user's cache is left alone.
os.environ.setdefault("RNN_TUTORIALS_XLA_CACHE", tempfile.mkdtemp(prefix="rnn_tutorials_xla_"))

from common import cell_op, devices  # pylint: disable=wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parents[1]

# GPU memory that grows as it is used, before any op: the command lines the tests run in
# processes of their own need some too. (`common`'s import did it; here it is explicit.)
devices.prepare_gpus()

# Two logical CPU devices, so tests can run MirroredStrategy with 2 replicas in process. It has
# to happen before TensorFlow initialises its devices; ops still default to /cpu:0.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)


# Parametrized checks of one-line errors: each case is a command-line run of a few seconds, so
# the quick tier (-m "not slow") runs the first case and the whole suite runs them all.
FIRST_CASE_ONLY_WHEN_QUICK = ("test_invalid_flags", "test_bad_data_files",
                              "test_bad_generate_arguments", "test_bad_distribution_flags",
                              "test_bad_data_file_is_a_clean_error_that_damages_nothing",
                              "test_invalid_flag_is_a_clean_error_naming_it",
                              "test_bad_flags_fail_in_one_line_and_leave_model_dir_alone")


def pytest_collection_modifyitems(items):
  """Marks every case but the first of FIRST_CASE_ONLY_WHEN_QUICK's tests `slow`."""
  seen = set()
  for item in items:
    name = getattr(item, "originalname", item.name)
    if name in FIRST_CASE_ONLY_WHEN_QUICK:
      if (item.module.__name__, name) in seen:
        item.add_marker(pytest.mark.slow)
      seen.add((item.module.__name__, name))


def _dir_from_env(var, required):
  path = os.environ.get(var)
  if not path or not all((pathlib.Path(path) / name).exists() for name in required):
    pytest.skip(f"${var} does not point at the real data ({', '.join(required)})")
  return pathlib.Path(path)


@pytest.fixture(scope="session")
def ptb_dir():
  return _dir_from_env("PTB_DATA_DIR", ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"])


@pytest.fixture(scope="session")
def shakespeare_file():
  """Tiny Shakespeare, char-rnn's corpus ($SHAKESPEARE_FILE)."""
  path = os.environ.get("SHAKESPEARE_FILE")
  if not path or not pathlib.Path(path).is_file():
    pytest.skip("$SHAKESPEARE_FILE does not point at tiny Shakespeare's input.txt")
  return pathlib.Path(path)


@pytest.fixture(scope="session")
def mnist_dir():
  return _dir_from_env("MNIST_DATA_DIR", ["train-images-idx3-ubyte.gz",
                                          "t10k-images-idx3-ubyte.gz"])


def require_cell_op():
  """Skips where there is no C++ compiler; where there is one, the op must build and load."""
  if shutil.which(os.environ.get("CXX") or "g++") is None:
    pytest.skip("no C++ compiler to build common/lstm_cell.cc")
  assert cell_op.load() is not None, "common/lstm_cell.cc did not build or load (see the log)"


def run_cli(module, *args, timeout=600):
  """Runs `python -m module args...` from the repository root; returns CompletedProcess."""
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def assert_clean_error(result, *needles):
  """A user error: non-zero exit, no traceback, and the message names what is wrong."""
  assert result.returncode != 0, result.stdout + result.stderr
  assert "Traceback" not in result.stderr, result.stderr
  for needle in needles:
    assert needle in result.stderr, result.stderr


def assert_independent_draws(model):
  """No randomly initialised weight of `model` starts as a copy of another's values, or of the
  start of another's: an initializer shared between weights (a Keras 3 initializer made without
  a seed) returns the same stream at every call, so a [650, 2600] kernel came out equal to the
  recurrent kernel and to the first 1.69M values of the embedding."""
  values = [(w.path, w.numpy().ravel()) for w in model.weights]
  drawn = [(name, v) for name, v in values if np.unique(v).size > v.size // 2]  # not constants
  assert len(drawn) > 1
  for i, (name_a, a) in enumerate(drawn):
    for name_b, b in drawn[i + 1:]:
      n = min(a.size, b.size)
      assert not np.array_equal(a[:n], b[:n]), f"{name_a} and {name_b} start from the same draws"


@pytest.fixture(scope="session")
def ptb_slice(ptb_dir, tmp_path_factory):
  """The first lines of each real PTB file: the real format, seconds to train on."""
  from ptb import data  # pylint: disable=import-outside-toplevel
  out = tmp_path_factory.mktemp("ptb_slice")
  for split, lines in (("train", 1500), ("valid", 150), ("test", 150)):
    text = (ptb_dir / data.FILES[split]).read_text().splitlines(keepends=True)[:lines]
    (out / data.FILES[split]).write_text("".join(text))
  return out


# --- mnist_rnn ------------------------------------------------------------------------------


def write_idx(path, magic, array):
  """Writes `array` (uint8) as a gzipped IDX file with the given magic number."""
  import gzip  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  array = np.asarray(array, np.uint8)
  header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.tobytes())


@pytest.fixture
def mnist_tiny_dir(tmp_path):
  """The four MNIST IDX files holding 5 training and 3 test images (labels 0-4 and 0-2)."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  for prefix, count in (("train", 5), ("t10k", 3)):
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", 2051,
              rng.integers(0, 256, (count, 28, 28)))
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", 2049, np.arange(count))
  return tmp_path


@pytest.fixture(scope="session")
def mnist_trained(mnist_dir, tmp_path_factory):
  """One short epoch of the test config on real MNIST via the CLI: (model_dir, result)."""
  model_dir = tmp_path_factory.mktemp("mnist_trained")
  result = run_cli("mnist_rnn.main", "--config=test", f"--data_dir={mnist_dir}",
                   f"--model_dir={model_dir}")
  assert result.returncode == 0, result.stderr
  return model_dir, result


def pytest_sessionfinish(session, exitstatus):
  """Removes the test session's XLA cache folder (set above) when the session made it."""
  del session, exitstatus
  folder = os.environ.get("RNN_TUTORIALS_XLA_CACHE", "")
  if pathlib.Path(folder).name.startswith("rnn_tutorials_xla_"):
    shutil.rmtree(folder, ignore_errors=True)
