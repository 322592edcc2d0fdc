"""What both apps share: data directories, metrics, summaries, checkpoints, exports, CLI glue.

Nothing app-specific lives here; see WORKSPACE.md for the map.
"""
import os

# TensorFlow's C++ start-up chatter (oneDNN notices, "no CUDA drivers") drowns the
# progress lines on CPU machines. A user who wants it back sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import logging as _logging

from absl import logging as _absl_logging

# TensorFlow's Python-side INFO lines (one per checkpoint shard, several per export) bury
# our progress lines.
_logging.getLogger("tensorflow").setLevel(_logging.WARNING)
_QUIET = ("functional_saver.py", "signature_serialization.py", "fingerprinting_utils.py")
_absl_logging.get_absl_logger().addFilter(
    lambda record: not record.pathname.endswith(_QUIET))
