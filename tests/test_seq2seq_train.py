"""python -m seq2seq.main and seq2seq.translate end to end on the tiny test config: the loop's
files, an export that translates as the model in the process does, resume and its refusal,
and the translate command's answers to bad input."""
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_clean_error, run_cli
from common.errors import UserError
from seq2seq import configs, data, train
from seq2seq import sweep as sweep_module
from seq2seq.model import Seq2Seq


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("seq2seq")
  result = run_cli("seq2seq.main", "--model=test", "--epochs=3", "--learning_rate=0.03",
                   f"--model_dir={model_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir, result


def test_training_writes_the_loops_files_and_decoded_scores(trained):
  model_dir, result = trained
  assert "token accuracy" in result.stderr and "tokens/s" in result.stderr
  metrics = json.loads((model_dir / "metrics.json").read_text())
  assert metrics["epochs"] == 3 and len(metrics["history"]) == 3
  assert 0 <= metrics["test_exact_match"] <= 1 and np.isfinite(metrics["test_loss"])
  # Lengths 2-6, in buckets of 5 characters; token accuracy by length, teacher-forced.
  assert set(metrics["test_exact_match_by_length"]) == {"1-5", "6-10"}
  assert set(metrics["test_token_accuracy_by_length"]) == {"1-5", "6-10"}
  # Three epochs of this task teach the tiny model something: the loss falls.
  losses = [row["train_loss"] for row in metrics["history"]]
  assert losses[-1] < losses[0]
  for name in ("config.json", "history.json", "source_vocab.json", "export/saved_model.pb"):
    assert (model_dir / name).exists(), name
  # TensorBoard holds the validation alignments as images, one per epoch and example.
  images = [value.tag for path in (model_dir / "validation").glob("events.out.tfevents.*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value if value.metadata.plugin_data.plugin_name ==
            "images"]
  assert sorted(set(images)) == [f"alignment/{i}" for i in range(train.ALIGNMENT_EXAMPLES)]
  assert len(images) == 3 * train.ALIGNMENT_EXAMPLES
  assert tf.train.latest_checkpoint(str(model_dir / "checkpoints"))


def test_the_export_translates_as_the_trained_model_does(trained):
  model_dir, _ = trained
  config = configs.TestConfig(**json.loads((model_dir / "config.json").read_text()))
  vocabs = [data.Vocabulary.load(model_dir / f"{side}_vocab.json")
            for side in ("source", "target")]
  model = Seq2Seq(config, len(vocabs[0]), len(vocabs[1]))
  one = tf.ones([1, 2], tf.int32)
  model((one, one))
  tf.train.Checkpoint(model=model).restore(
      tf.train.latest_checkpoint(str(model_dir / "checkpoints"))).expect_partial()
  pairs = [("abc", ""), ("qrst", ""), ("e", "")]  # standardised, characters
  expected, translations = train.translate_pairs(model, vocabs, pairs, config,
                                                 config.beam_width)
  exported = tf.saved_model.load(str(model_dir / "export")).signatures["translate"]
  out = exported(sentences=tf.constant(["ABC", " qrst ", "e"]))  # standardised in the graph
  assert [t.decode() for t in out["translations"].numpy()] == expected
  for row, translation in enumerate(translations):
    length, source_length = len(translation.ids), len(pairs[row][0])
    np.testing.assert_allclose(out["alignments"][row, :length + 1, :source_length],
                               translation.alignment, atol=1e-5)


def test_a_rerun_with_other_settings_is_refused(trained):
  model_dir, _ = trained
  before = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
  result = run_cli("seq2seq.main", "--model=test", "--epochs=3", "--learning_rate=0.03",
                   "--attention=none", f"--model_dir={model_dir}")
  assert_clean_error(result, "(attention differ)", "new --model_dir")
  assert {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()} == before


def test_a_run_from_before_split_unit_is_refused_under_another_cut(trained, tmp_path):
  """config.json without split_unit (older runs, all cut by sentence) resumes as `sentence`
  and is refused as `pair`, before anything is written."""
  model_dir, _ = trained
  old_run = tmp_path / "old"
  shutil.copytree(model_dir, old_run)
  config_path = old_run / "config.json"
  saved = json.loads(config_path.read_text())
  del saved["split_unit"]
  config_path.write_text(json.dumps(saved))
  before = {p: p.read_bytes() for p in old_run.rglob("*") if p.is_file()}
  result = run_cli("seq2seq.main", "--model=test", "--epochs=3", "--learning_rate=0.03",
                   "--split_unit=pair", f"--model_dir={old_run}")
  assert_clean_error(result, "(split_unit differ)", "new --model_dir")
  assert {p: p.read_bytes() for p in old_run.rglob("*") if p.is_file()} == before


def test_translate_names_unknown_tokens_and_draws_the_alignment(trained, tmp_path):
  model_dir, _ = trained
  result = run_cli("seq2seq.translate", f"--model_dir={model_dir}",
                   f"--plot={tmp_path / 'a.png'}", "abcz")
  assert result.returncode == 0, result.stderr
  assert "'z' never seen in training" in result.stderr
  assert (tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
  assert_clean_error(run_cli("seq2seq.translate", f"--model_dir={model_dir}", "  "),
                     "an input is empty")
  assert_clean_error(run_cli("seq2seq.translate", f"--model_dir={tmp_path}", "a"),
                     "no SavedModel")



def test_the_sweep_trains_without_and_with_attention_then_plots_by_length(tmp_path,
                                                                         monkeypatch):
  result = run_cli("seq2seq.sweep", "--model=test", "--epochs=1", f"--model_dir={tmp_path}")
  assert result.returncode == 0, result.stderr[-3000:]
  sweep = json.loads((tmp_path / "sweep.json").read_text())
  assert set(sweep) == {"none", "bahdanau"}
  for run in sweep.values():
    assert set(run["test_token_accuracy_by_length"]) == {"1-5", "6-10"}
    assert 0 <= run["test_exact_match"] <= 1 and run["training_minutes"] > 0
    assert sum(run["test_sentences_by_length"].values()) == configs.TestConfig.test_size
  assert json.loads((tmp_path / "none" / "config.json").read_text())["attention"] == "none"
  # A rerun reads the finished runs instead of training them again, and draws them anew.
  (tmp_path / "sweep.png").unlink()
  config = configs.get_config("test", epochs=1)
  monkeypatch.setattr(train, "train_and_evaluate", lambda *args: pytest.fail("retrained"))
  again = sweep_module.run_sweep(config, tmp_path, train.RunOptions())
  assert {name: run["test_loss"] for name, run in again.items()} == {
      name: run["test_loss"] for name, run in sweep.items()}
  assert (tmp_path / "sweep.png").read_bytes().startswith(b"\x89PNG")
  with pytest.raises(UserError, match="--attention=none is the baseline"):
    sweep_module.run_sweep(configs.get_config("test", attention="none"), tmp_path / "x",
                           train.RunOptions())
