"""nanoGPT's validation loss and ours, from a character model's SavedModel (ptb/nanogpt_eval.py),
checked against the model itself on hand-picked windows."""
import dataclasses
import logging

import numpy as np
import pytest
import tensorflow as tf

from common.errors import UserError
from conftest import assert_clean_error, run_cli
from ptb import configs, data, export, model, nanogpt_eval

# 413 characters, "é" among them: the split starts at int(0.9 * 413) = int(371.7) = 371 and
# holds 42 characters (code points, not UTF-8 bytes).
TEXT = "".join(np.random.default_rng(0).choice(list("abcdé \n"), 413))
START, LENGTH = 371, 42


def _lm(vocab, num_layers=2):
  """A small model whose predictions depend strongly on the context: weights N(0, 1), not the
  tutorial's near-uniform start, so that a window read from the wrong place or state shows."""
  config = dataclasses.replace(configs.TestConfig(), level="char", vocab_size=len(vocab),
                               hidden_size=8, num_layers=num_layers)
  lm = model.PTBModel(config, "float32")
  lm.create_variables()
  rng = np.random.default_rng(1)
  for variable in lm.weights:
    variable.assign(rng.normal(0.0, 1.0, variable.shape).astype(np.float32))
  return lm


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
  """(model_dir, in-process model, vocab, text file) of TEXT's characters, exported."""
  model_dir = tmp_path_factory.mktemp("nanogpt_eval")
  vocab = data.char_vocab(TEXT[:START])
  lm = _lm(vocab)
  export.export(lm, vocab, model_dir / "export")
  text_file = model_dir / "input.txt"
  text_file.write_text(TEXT, encoding="utf-8")
  return model_dir, lm, vocab, text_file


@pytest.fixture(scope="module")
def exported(char_model):
  return tf.saved_model.load(str(char_model[0] / "export"))


def _model_nll(lm, ids):
  """Mean -log p(ids[t] | ids[:t]) over t >= 1 from the zero state, by the in-process model
  (not the export)."""
  logits, _ = lm(np.array([ids[:-1]], np.int32), lm.zero_state(1))
  log_probs = tf.nn.log_softmax(logits[0]).numpy().astype(np.float64)
  return -np.mean([log_probs[t, token] for t, token in enumerate(ids[1:])])


def _split_ids(vocab):
  return data.to_ids(TEXT[START:], vocab, unit="characters")


def test_the_split_is_the_last_tenth_by_int_of_0_9_n():
  start, split = nanogpt_eval.validation_split(TEXT)
  assert (start, len(split)) == (START, LENGTH) and split == TEXT[-42:]
  assert len(TEXT.encode("utf-8")) > 413  # cut by characters, not bytes
  assert nanogpt_eval.validation_split("x" * 19)[0] == 17  # int(17.1)
  assert nanogpt_eval.validation_split("x" * 10)[0] == 9


def test_the_split_is_the_one_ptb_main_validates_and_tests_on(char_model):
  ids, vocab = data.load("", char_model[3], level="char")
  ours = "".join(vocab[i] for i in np.concatenate([ids["valid"], ids["test"]]))
  assert ours == nanogpt_eval.validation_split(TEXT)[1]


def test_window_starts_are_nanogpts_uniform_draws_and_the_seed_repeats_them():
  starts = nanogpt_eval.window_starts(LENGTH, 5, 3000, seed=0)
  assert set(starts) == set(range(LENGTH - 5))  # every start whose window and target fit
  np.testing.assert_array_equal(starts, nanogpt_eval.window_starts(LENGTH, 5, 3000, seed=0))
  assert not np.array_equal(starts, nanogpt_eval.window_starts(LENGTH, 5, 3000, seed=1))


def test_each_window_is_read_from_the_zero_state_and_scored_at_every_position(char_model,
                                                                            exported):
  _, lm, vocab, _ = char_model
  ids = _split_ids(vocab)
  starts = np.array([0, 17, LENGTH - 5 - 1])  # the first, a middle and the last start
  losses = nanogpt_eval.window_losses(exported, ids, starts, 5, batch=2)  # batches of 2 and 1
  expected = [_model_nll(lm, ids[s:s + 6]) for s in starts]  # 5 inputs, 5 targets
  np.testing.assert_allclose(losses, expected, rtol=1e-5)
  assert np.ptp(expected) > 0.1  # the windows differ: reading the wrong one would show
  # and by hand through the export's step signature, for the middle window
  state = exported.signatures["initial_state"](batch_size=tf.constant(1))["state"]
  nll = 0.0
  for t in range(5):
    out = exported.signatures["step"](ids=tf.constant([ids[17 + t]]), state=state)
    state, nll = out["state"], nll - float(out["log_probs"][0, ids[17 + t + 1]])
  assert losses[1] == pytest.approx(nll / 5, rel=1e-5)


def test_the_estimate_is_the_mean_of_seeded_windows_with_its_standard_error(char_model,
                                                                           exported):
  _, _, vocab, text_file = char_model
  result = nanogpt_eval.evaluate(exported, text_file, windows=50, window=5, seed=3)
  starts = nanogpt_eval.window_starts(LENGTH, 5, 50, seed=3)
  losses = nanogpt_eval.window_losses(exported, _split_ids(vocab), starts, 5)
  assert result.loss == pytest.approx(losses.mean(), rel=1e-9)
  assert result.standard_error == pytest.approx(losses.std(ddof=1) / np.sqrt(50), rel=1e-9)
  assert (result.start, result.end, result.windows, result.window) == (START, 413, 50, 5)
  again = nanogpt_eval.evaluate(exported, text_file, windows=50, window=5, seed=3)
  assert again.loss == result.loss
  assert nanogpt_eval.evaluate(exported, text_file, windows=50, window=5, seed=4).loss != \
      result.loss


def test_a_window_as_long_as_the_split_gives_the_carried_loss(char_model, exported):
  # The only window starts at 0 and reads the whole split from the zero state: ours, once.
  result = nanogpt_eval.evaluate(exported, char_model[3], windows=3, window=LENGTH - 1)
  assert result.loss == pytest.approx(result.carried_loss, rel=1e-5)
  assert result.standard_error == 0 and result.carried_tokens == LENGTH - 1


def test_the_carried_loss_is_the_step_signature_fed_the_split_in_order(char_model, exported):
  _, lm, vocab, text_file = char_model
  ids = _split_ids(vocab)
  state = exported.signatures["initial_state"](batch_size=tf.constant(1))["state"]
  nll = 0.0
  for t in range(LENGTH - 1):
    out = exported.signatures["step"](ids=tf.constant([ids[t]]), state=state)
    state, nll = out["state"], nll - float(out["log_probs"][0, ids[t + 1]])
  for chunk in (7, 41, nanogpt_eval.CHUNK):  # the state goes across calls, or there is one
    loss, tokens = nanogpt_eval.carried_loss(exported, ids, chunk=chunk)
    assert tokens == LENGTH - 1 and loss == pytest.approx(nll / tokens, rel=1e-5)
  assert _model_nll(lm, ids) == pytest.approx(nll / (LENGTH - 1), rel=1e-5)
  result = nanogpt_eval.evaluate(exported, text_file, windows=4, window=5)
  assert result.carried_loss == pytest.approx(nll / (LENGTH - 1), rel=1e-5)


def test_characters_the_model_never_saw_read_as_unk_and_are_counted(tmp_path, exported, caplog):
  caplog.set_level(logging.WARNING)
  text_file = tmp_path / "input.txt"
  text_file.write_text(TEXT[:START] + "xyz日" + TEXT[START + 4:], encoding="utf-8")
  result = nanogpt_eval.evaluate(exported, text_file, windows=4, window=5)
  assert result.unseen == 4
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any("4 of 42 characters are not in the vocabulary; mapped to <unk>" in w
             for w in warnings), warnings
  assert "(4 characters the model never saw read as <unk>)" in nanogpt_eval.report(result)


def test_the_report_gives_both_numbers_and_asks_for_more_windows_when_needed(char_model,
                                                                            exported):
  result = nanogpt_eval.evaluate(exported, char_model[3], windows=20, window=5)
  lines = nanogpt_eval.report(result)
  assert lines[0].endswith(f"(characters {START}-413, {LENGTH} characters)")
  nanogpt, ours = lines[2].split(), lines[3].split()
  assert [float(x) for x in nanogpt[-3:]] == pytest.approx(
      [result.loss, result.standard_error, result.loss / np.log(2)], abs=1e-4)
  assert [float(x) for x in ours[-2:]] == pytest.approx(
      [result.carried_loss, result.carried_loss / np.log(2)], abs=1e-4)
  assert result.standard_error > nanogpt_eval.STANDARD_ERROR_GOAL  # 20 windows are too few
  needed = int(lines[-1].split("--windows=")[1].split()[0])
  assert needed == int(np.ceil(20 * (result.standard_error / 0.0025) ** 2))


@pytest.mark.parametrize("text,options,needle", [
    (TEXT[:60], {"window": 6}, "its last 10% (characters 54-60) holds 6 characters, too few "
     "for --window=6 (a window reads 7): use a longer text or a smaller --window"),
    (TEXT, {"windows": 1}, "--windows=1 --window=256: use --windows=2 or more"),
    (TEXT, {"window": 0}, "--window=1 or more"),
    (None, {}, "missing.txt does not exist"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, exported, text, options, needle):
  text_file = tmp_path / ("input.txt" if text else "missing.txt")
  if text:
    text_file.write_text(text, encoding="utf-8")
  with pytest.raises(UserError) as raised:
    nanogpt_eval.evaluate(exported, text_file, **options)
  assert needle in str(raised.value) and "\n" not in str(raised.value), raised.value


def test_a_word_model_is_refused(tmp_path):
  vocab = ["<eos>", "a", "b", "<unk>"]
  config = dataclasses.replace(configs.TestConfig(), vocab_size=len(vocab))
  lm = model.PTBModel(config, "float32")
  lm.create_variables()
  word_export = tf.saved_model.load(str(export.export(lm, vocab, tmp_path / "export")))
  with pytest.raises(UserError, match="this export is a word-level model: pass the "
                     "--model_dir of a character model"):
    nanogpt_eval.evaluate(word_export, tmp_path / "never_read.txt")


def test_score_cli_prints_nanogpts_number_and_ours(char_model, exported):
  model_dir, _, _, text_file = char_model
  result = run_cli("ptb.score", f"--model_dir={model_dir}", "--protocol=nanogpt",
                   f"--text_file={text_file}", "--windows=30", "--window=4", "--seed=2")
  assert result.returncode == 0, result.stderr
  expected = nanogpt_eval.report(
      nanogpt_eval.evaluate(exported, text_file, windows=30, window=4, seed=2))
  assert result.stdout.splitlines() == expected


@pytest.mark.slow
@pytest.mark.parametrize("args,needles", [
    (["--protocol=nanogpt", "some sentence"], ["--protocol=nanogpt evaluates a text file, not "
                                               "sentences ('some sentence')"]),
    (["--windows=100", "--seed=1", "a b"], ["--windows, --seed are read only with "
                                            "--protocol=nanogpt", "leave them out"]),
    (["--protocol=gpt2"], ["protocol"]),
])
def test_bad_score_arguments(char_model, args, needles):
  result = run_cli("ptb.score", f"--model_dir={char_model[0]}", *args)
  assert_clean_error(result, *needles)
