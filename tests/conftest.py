"""Shared fixtures: where the real datasets are (CI sets PTB_DATA_DIR and MNIST_DATA_DIR)."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _dir_from_env(var, required):
  path = os.environ.get(var)
  if not path or not all((pathlib.Path(path) / name).exists() for name in required):
    pytest.skip(f"${var} does not point at the real data ({', '.join(required)})")
  return pathlib.Path(path)


@pytest.fixture(scope="session")
def ptb_dir():
  return _dir_from_env("PTB_DATA_DIR", ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"])


@pytest.fixture(scope="session")
def mnist_dir():
  return _dir_from_env("MNIST_DATA_DIR", ["train-images-idx3-ubyte.gz",
                                          "t10k-images-idx3-ubyte.gz"])


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
