"""What both apps share: data directories, metrics, summaries, checkpoints, exports, CLI glue.

Nothing app-specific lives here; see WORKSPACE.md for the map.
"""
import os
import re
import sys
import tempfile

# TensorFlow's C++ start-up chatter (oneDNN notices, "no CUDA drivers") drowns the
# progress lines on CPU machines. A user who wants it back sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# XLA's compiled steps kept on disk for the next run (common/xla_cache.py); before TensorFlow
# reads TF_XLA_FLAGS.
from common import xla_cache as _xla_cache  # pylint: disable=wrong-import-position

_xla_cache.configure()


def _import_tensorflow_quietly():
  """`import tensorflow`, keeping from stderr the C++ log lines TF_CPP_MIN_LOG_LEVEL hides.

  TensorFlow 2.21 logs through Abseil, which writes every line logged before its
  InitializeLog() to stderr whatever the level (abseil/abseil-cpp#1957): importing it
  prints six such lines on a CPU machine. The import runs with stderr (the file descriptor,
  which the C++ code writes to) in a temporary file; what comes back is what the level lets
  through, and everything that is not a C++ log line, such as Python's own errors.
  """
  level = os.environ["TF_CPP_MIN_LOG_LEVEL"].strip()
  hidden = "IWE"[:int(level)] if level.isdigit() else ""  # 1 hides INFO, 2 also WARNING, ...
  if not hidden or "tensorflow" in sys.modules:
    _import_tensorflow()
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile("w+", errors="replace") as captured:
    os.dup2(captured.fileno(), 2)
    try:
      _import_tensorflow()
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured:
        severity = re.match(r"([IWEF])\d{4} |(WARNING): All log messages before absl", line)
        if not severity or (severity[1] or "I") not in hidden:
          sys.stderr.write(line)


def _import_tensorflow():
  try:
    import tensorflow  # noqa: F401
  except ImportError as error:
    raise SystemExit(f"error: cannot import TensorFlow ({error}); install the requirements: "
                     "pip install -r requirements.txt") from None


_import_tensorflow_quietly()

import logging as _logging

from absl import logging as _absl_logging

# TensorFlow's Python-side INFO lines (one per checkpoint shard, several per export) bury
# our progress lines.
_logging.getLogger("tensorflow").setLevel(_logging.WARNING)
_QUIET = ("functional_saver.py", "signature_serialization.py", "fingerprinting_utils.py")
_absl_logging.get_absl_logger().addFilter(
    lambda record: not record.pathname.endswith(_QUIET))

from common import devices as _devices  # pylint: disable=wrong-import-position

# Every app's processes (and the tests'): GPU memory that grows as it is used.
_devices.prepare_gpus()
