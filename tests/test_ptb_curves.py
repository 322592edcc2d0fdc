"""ptb.curves: the validation curves of ptb runs in one figure, and its one-line errors."""
import json

import pytest

from common.errors import UserError
from conftest import assert_clean_error, run_cli
from ptb import curves


def _history(path, perplexities):
  path.mkdir()
  rows = [{"epoch": e, "valid_perplexity": p, "train_perplexity": 2 * p}
          for e, p in enumerate(perplexities, 1)]
  (path / "history.json").write_text(json.dumps(rows))
  return path


def test_curves_read_each_runs_history_and_draw_them(tmp_path):
  small = _history(tmp_path / "small", [180.0, 141.5, 125.0])
  assert curves.read_curve(small) == [(1, 180.0), (2, 141.5), (3, 125.0)]
  medium = _history(tmp_path / "medium", [211.5, 153.9])
  result = run_cli("ptb.curves", f"--run=small={small}", f"--run=medium={medium}",
                   f"--out={tmp_path / 'valid.png'}")
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "valid.png").read_bytes().startswith(b"\x89PNG")
  legend = [t.get_text() for t in curves.figure(
      {"medium": [(1, 211.5), (2, 153.9)]}).axes[0].get_legend().get_texts()]
  assert legend == ["medium: 153.90 after 2 epochs", "medium, the tutorial's final: 86.16",
                    "medium, the tutorial's script, 10 runs: 87.345-87.883"]


def test_bad_runs_are_one_line_errors(tmp_path):
  with pytest.raises(UserError, match="is not LABEL=MODEL_DIR"):
    curves.parse_runs(["medium"])
  with pytest.raises(UserError, match="no runs"):
    curves.parse_runs([])
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / "history.json").write_text('[{"epoch": 1}]')
  with pytest.raises(UserError, match="is not a ptb run's history"):
    curves.read_curve(tmp_path / "broken")
  assert_clean_error(run_cli("ptb.curves", f"--run=x={tmp_path / 'none'}",
                             f"--out={tmp_path / 'x.png'}"), "history.json does not exist")
  assert not (tmp_path / "x.png").exists()
