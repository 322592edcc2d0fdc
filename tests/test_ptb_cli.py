"""End to end through the command line: train, resume, export, score, generate, bad input."""
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, assert_clean_error, run_cli
from ptb import data


@pytest.fixture(scope="module")
def trained(ptb_slice, tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("ptb_model")
  result = run_cli("ptb.main", "--model=test", f"--data_path={ptb_slice}",
                   f"--save_path={model_dir}", "--hidden_size=16", "--max_max_epoch=2")
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir, result.stderr


def test_training_writes_logs_checkpoints_metrics_and_export(trained):
  model_dir, log = trained
  for line in ("Epoch: 1 Learning rate: 1.000", "Epoch: 2 Learning rate: 0.500",
               "Epoch: 2 Valid Perplexity:", "Test Perplexity:"):
    assert line in log
  assert sum("words/s  ETA" in line for line in log.splitlines()) >= 20  # ~10 per epoch
  metrics = json.loads((model_dir / "metrics.json").read_text())
  assert metrics["epochs"] == 2 and metrics["config"]["hidden_size"] == 16
  assert 1 < metrics["test_perplexity"] < metrics["config"]["vocab_size"]
  assert metrics["words_per_second"] > 0 and metrics["wall_seconds"] > 0
  assert [row["learning_rate"] for row in metrics["history"]] == [1.0, 0.5]
  for split in ("train", "valid", "test"):
    assert list((model_dir / split).glob("events.out.tfevents.*")), split
  assert tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
  assert (model_dir / "projector_config.pbtxt").exists()
  assert len((model_dir / "metadata.tsv").read_text().splitlines()) == \
      metrics["config"]["vocab_size"]


def _restored_model(model_dir):
  """The trained model in process, from the checkpoint (not the export)."""
  from ptb import configs, train  # pylint: disable=import-outside-toplevel
  config = configs.TestConfig(**json.loads((model_dir / "config.json").read_text()))
  model = train.PTBModel(config)
  model.create_variables()
  checkpoint = tf.train.Checkpoint(model=model)
  checkpoint.restore(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))).expect_partial()
  return model


def test_exported_scores_equal_the_in_process_model(trained, ptb_slice):
  model_dir, _ = trained
  exported = tf.saved_model.load(str(model_dir / "export"))
  sentences = ["the company said", "The Company said it will buy zyxwv", ""]
  out = exported.signatures["score"](sentences=tf.constant(sentences))
  model = _restored_model(model_dir)
  vocab = [w.decode() for w in exported.signatures["vocabulary"]()["words"].numpy()]
  for i, sentence in enumerate(sentences):
    ids = data.to_ids(["<eos>"] + sentence.lower().split() + ["<eos>"], vocab)
    logits, _ = model(ids[None, :-1], model.zero_state(1))
    log_prob = -tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(ids[1:],
                                                                              logits[0]))
    assert out["log_prob"][i].numpy() == pytest.approx(float(log_prob), rel=1e-4)
    assert out["num_tokens"][i] == len(ids) - 1
    assert out["perplexity"][i].numpy() == pytest.approx(
        np.exp(-float(log_prob) / (len(ids) - 1)), rel=1e-4)


def test_step_signature_streams_like_the_model(trained):
  model_dir, _ = trained
  exported = tf.saved_model.load(str(model_dir / "export"))
  model = _restored_model(model_dir)
  ids = np.array([[2, 5, 9, 3]], np.int32)
  logits, final = model(ids, model.zero_state(1))
  state = exported.signatures["initial_state"](batch_size=tf.constant(1))["state"]
  for t in range(4):
    out = exported.signatures["step"](ids=tf.constant(ids[:, t]), state=state)
    state = out["state"]
    np.testing.assert_allclose(out["log_probs"][0], tf.nn.log_softmax(logits[0, t]), atol=1e-4)
  np.testing.assert_allclose(state, final, atol=1e-5)


@pytest.mark.slow
def test_score_cli(trained):
  model_dir, _ = trained
  result = run_cli("ptb.score", f"--model_dir={model_dir}", "the company said", "a b")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].split() == ["log_prob", "tokens", "perplexity", "sentence"]
  assert lines[1].split()[1:] == ["4", lines[1].split()[2], "the", "company", "said"]
  assert float(lines[1].split()[0]) < 0


@pytest.mark.slow
def test_generation_is_repeatable_with_a_seed(trained):
  model_dir, _ = trained
  args = ["ptb.generate", f"--model_dir={model_dir}", "--prime=the company said",
          "--num_words=20", "--temperature=0.8"]
  first, again, other = (run_cli(*args, "--seed=1"), run_cli(*args, "--seed=1"),
                         run_cli(*args, "--seed=2"))
  assert first.returncode == 0, first.stderr
  assert first.stdout == again.stdout != other.stdout
  assert first.stdout.startswith("the company said")
  greedy = [run_cli(*args[:-1], "--temperature=0", f"--seed={s}").stdout for s in (1, 2)]
  assert greedy[0] == greedy[1]


@pytest.mark.slow
def test_rerun_resumes_and_continues_the_schedule(trained, ptb_slice, tmp_path):
  model_dir, _ = trained
  resumed_dir = tmp_path / "resumed"
  shutil.copytree(model_dir, resumed_dir)
  result = run_cli("ptb.main", "--model=test", f"--data_dir={ptb_slice}",
                   f"--model_dir={resumed_dir}", "--hidden_size=16", "--max_max_epoch=3")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "resumed from" in result.stderr
  assert "Epoch: 1 Learning rate" not in result.stderr  # the two done epochs are not redone
  assert "Epoch: 3 Learning rate: 0.250" in result.stderr
  history = json.loads((resumed_dir / "metrics.json").read_text())["history"]
  assert [row["epoch"] for row in history] == [1, 2, 3]


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_loses_nothing(ptb_slice, tmp_path):
  args = ["--model=test", f"--data_dir={ptb_slice}", f"--model_dir={tmp_path}",
          "--hidden_size=16", "--checkpoint_every_steps=50"]
  process = subprocess.Popen([sys.executable, "-m", "ptb.main", *args], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while time.time() < deadline and not list((tmp_path / "checkpoints").glob("ckpt-2.index")):
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not (tmp_path / "metrics.json").exists(), "finished before it could be killed"
  result = run_cli("ptb.main", *args)
  assert result.returncode == 0, result.stderr[-3000:]
  resumed = [line for line in result.stderr.splitlines() if "resumed from" in line]
  assert resumed and "epoch 1, step" in resumed[0] and "step 0" not in resumed[0]
  reference = run_cli("ptb.main", *args[:2], f"--model_dir={tmp_path / 'straight'}",
                      *args[3:])
  ours = json.loads((tmp_path / "metrics.json").read_text())
  straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
  assert ours["train_perplexity"] == pytest.approx(straight["train_perplexity"], rel=1e-4)
  assert ours["test_perplexity"] == pytest.approx(straight["test_perplexity"], rel=1e-4)
  assert reference.returncode == 0


# ---- bad input: one clear line, non-zero exit, nothing saved is damaged ----

def _data_dir(path, **files):
  path.mkdir()
  for split in data.SPLITS:
    (path / data.FILES[split]).write_bytes(files.get(split, b"a b c\n" * 200))
  return path


@pytest.mark.parametrize("files,needle", [
    ({"valid": b""}, "ptb.valid.txt is empty"),
    ({"train": b"\xff\xfe\x00 not text"}, "ptb.train.txt is not UTF-8"),
    ({"train": b"a b\n"}, "too few for batch_size=20 x num_steps=2"),
])
def test_bad_data_files(tmp_path, files, needle):
  data_dir = _data_dir(tmp_path / "data", **files)
  result = run_cli("ptb.main", "--model=test", f"--data_dir={data_dir}",
                   f"--model_dir={tmp_path / 'model'}")
  assert_clean_error(result, needle)


@pytest.mark.slow
def test_missing_data_file(tmp_path):
  (tmp_path / "ptb.train.txt").write_text("a b\n")
  result = run_cli("ptb.main", "--model=test", f"--data_dir={tmp_path}",
                   f"--model_dir={tmp_path / 'model'}")
  assert_clean_error(result, "lacks ptb.valid.txt, ptb.test.txt")


@pytest.mark.parametrize("flag,needle", [
    ("--model=huge", "--model"), ("--keep_prob=1.5", "--keep_prob"),
    ("--max_max_epoch=-1", "--max_max_epoch"), ("--batch_size=0", "--batch_size"),
    ("--precision=bfloat16_matmuls --nojit_compile", "needs --jit_compile"),
    ("--precision=mixed_float16", "needs loss scaling"),
])
def test_invalid_flags(tmp_path, flag, needle):
  result = run_cli("ptb.main", *flag.split(), "--use_synthetic_data", f"--model_dir={tmp_path}")
  assert_clean_error(result, needle)
  assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_too_short_valid_split_is_refused_before_training(tmp_path):
  """Every split's size is known at load time: no epoch is trained before the error."""
  data_dir = _data_dir(tmp_path / "data", valid=b"a b\n")
  result = run_cli("ptb.main", "--model=test", f"--data_dir={data_dir}",
                   f"--model_dir={tmp_path / 'model'}")
  assert_clean_error(result, "the valid split has 3 tokens", "batch_size=20 x num_steps=2")
  assert not (tmp_path / "model" / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("app", ["ptb", "mnist_rnn"])
def test_a_model_dir_that_is_a_file_is_refused_before_anything(tmp_path, app):
  path = tmp_path / "notes.txt"
  path.write_text("keep me\n")
  for model_dir in (path, path / "run"):
    result = run_cli(f"{app}.main", "--use_synthetic_data", f"--model_dir={model_dir}")
    assert_clean_error(result, f"{path} is a file, not a directory")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert path.read_text() == "keep me\n" and sorted(tmp_path.iterdir()) == [path]


@pytest.mark.slow
def test_stray_arguments_are_refused(tmp_path):
  """...in one line: nothing else on stderr, not even TensorFlow's start-up log lines."""
  result = run_cli("ptb.main", "small", "--use_synthetic_data", f"--model_dir={tmp_path}")
  assert_clean_error(result, "unexpected arguments ['small']")
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert not list(tmp_path.iterdir())


def test_a_broken_tensorflow_install_is_one_line_not_a_traceback(tmp_path):
  fake = tmp_path / "tensorflow"  # a TensorFlow whose import fails, found before the real one
  fake.mkdir()
  (fake / "__init__.py").write_text('raise ImportError("No module named tensorflow.python")\n')
  result = subprocess.run([sys.executable, "-m", "ptb.main"], cwd=ROOT, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin",
                                          "PYTHONPATH": f"{tmp_path}:{ROOT}"})
  assert_clean_error(result, "cannot import TensorFlow", "pip install -r requirements.txt")


@pytest.mark.slow
def test_changed_config_does_not_touch_the_saved_run(trained, ptb_slice):
  model_dir, _ = trained
  before = {p.name: p.stat().st_mtime_ns for p in (model_dir / "checkpoints").iterdir()}
  result = run_cli("ptb.main", "--model=test", f"--data_dir={ptb_slice}",
                   f"--model_dir={model_dir}", "--hidden_size=32")
  assert_clean_error(result, "hidden_size", "new --model_dir")
  assert before == {p.name: p.stat().st_mtime_ns for p in (model_dir / "checkpoints").iterdir()}


@pytest.mark.parametrize("args,needle", [
    (["--prime= "], "--prime is empty"), (["--temperature=-1"], "--temperature"),
])
def test_bad_generate_arguments(trained, args, needle):
  model_dir, _ = trained
  assert_clean_error(run_cli("ptb.generate", f"--model_dir={model_dir}", *args), needle)


@pytest.mark.slow
def test_model_dir_without_export(tmp_path):
  assert_clean_error(run_cli("ptb.generate", f"--model_dir={tmp_path}"), "no SavedModel")
  assert_clean_error(run_cli("ptb.score", f"--model_dir={tmp_path}", "a b"), "no SavedModel")
  assert_clean_error(run_cli("ptb.score", f"--model_dir={tmp_path}"), "no sentences given")
