"""Saving without losing what was saved: checkpoints, metrics.json and SavedModel exports.

Every writer here goes to a temporary path first and renames at the end, so a crash or
kill -9 leaves either the old file or the new one, never half of one.
"""
import json
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf

from common import training_state
from common.errors import UserError


def write_json(path, obj):
  """Writes `obj` as pretty JSON to `path` atomically."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
  with os.fdopen(fd, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def save_figure(figure, path, dpi=100):
  """Writes a matplotlib figure to `path` (PNG) through a temporary file, then closes it."""
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel: figures only
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}-tmp.png")
  figure.savefig(tmp, dpi=dpi)
  pyplot.close(figure)
  tmp.replace(path)


def checkpoint_manager(checkpoint, model_dir, max_to_keep=3, save_dir=None, legacy=None):
  """A CheckpointManager under MODEL_DIR/checkpoints that restores the latest, if any.

  Args:
    save_dir: where to save instead of MODEL_DIR (a non-chief worker's scratch directory);
      the latest checkpoint is still restored from MODEL_DIR.
    legacy: a checkpoint of the same objects in the layout written before
      `common.training_state` (no `state` object); a latest checkpoint in that layout is
      restored through it, and the next save writes today's.

  Returns:
    (manager, restored_path or None).
  """
  latest = tf.train.latest_checkpoint(str(pathlib.Path(model_dir) / "checkpoints"))
  manager = tf.train.CheckpointManager(
      checkpoint, str(pathlib.Path(save_dir or model_dir) / "checkpoints"),
      max_to_keep=max_to_keep)
  if latest:
    try:
      old_layout = legacy is not None and not training_state.holds_state(latest)
      (legacy if old_layout else checkpoint).restore(latest).expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError) as e:
      raise UserError(f"cannot restore {latest} ({type(e).__name__}): it was "
                      "written by a different configuration; use a new --model_dir or the "
                      "flags it was trained with") from None
  return manager, latest


def save_model(module, export_dir, signatures):
  """tf.saved_model.save to a temporary sibling, then swaps it in place of `export_dir`."""
  export_dir = pathlib.Path(export_dir)
  export_dir.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=export_dir.parent, prefix=f".{export_dir.name}-"))
  try:
    tf.saved_model.save(module, str(tmp), signatures=signatures)
    old = export_dir.with_name(f".{export_dir.name}-old")
    if export_dir.exists():
      shutil.rmtree(old, ignore_errors=True)
      os.replace(export_dir, old)
    os.replace(tmp, export_dir)
    shutil.rmtree(old, ignore_errors=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return export_dir


def load_export(model_dir):
  """Loads MODEL_DIR/export, or says clearly that there is none."""
  export_dir = pathlib.Path(model_dir) / "export"
  if not (export_dir / "saved_model.pb").exists():
    raise UserError(f"no SavedModel at {export_dir}: train first (it exports at the end) or "
                    "pass the --model_dir you trained with")
  return tf.saved_model.load(str(export_dir))


def check_model_dir(model_dir):
  """Refuses a --model_dir that cannot be a directory (an existing file), before any work."""
  path = pathlib.Path(model_dir)
  for parent in (path, *path.parents):
    if parent.exists() and not parent.is_dir():
      raise UserError(f"--model_dir={model_dir}: {parent} is a file, not a directory: pass "
                      "a directory (it is created if missing)")
