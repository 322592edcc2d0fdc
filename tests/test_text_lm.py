"""Language models of any text: the char and word data layer, sampling, the SavedModel."""
import collections
import dataclasses
import hashlib
import logging
import re

import numpy as np
import pytest
import tensorflow as tf

from common.errors import UserError
from conftest import assert_clean_error, run_cli
from ptb import configs, data, export, generate, model, score


@pytest.fixture
def warnings(caplog):
  """The absl warnings logged during the test, as strings."""
  caplog.set_level(logging.WARNING)
  return lambda: [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def _write(tmp_path, content, name="input.txt"):
  path = tmp_path / name
  path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
  return path


# ---- characters --------------------------------------------------------------------------

def test_char_vocabulary_is_code_points_in_order_then_unk(tmp_path, warnings):
  # 20 characters: train [0, 18), valid [18, 19), test [19, 20); "ö" is only in test.
  text = "hé\n日🙂h" * 3 + "é" + "ö"
  ids, vocab = data.load(tmp_path, _write(tmp_path, text), level="char")
  assert vocab == ["\n", "h", "é", "日", "🙂", "<unk>"]  # U+000A, U+0068, U+00E9, U+65E5, U+1F642
  assert vocab == sorted(set(text[:18])) + ["<unk>"]  # nanoGPT's ids, then <unk>
  np.testing.assert_array_equal(ids["train"][:7], [1, 2, 0, 3, 4, 1, 1])
  assert len(ids["train"]) == 18  # code points, not the 36 bytes of UTF-8
  np.testing.assert_array_equal(ids["valid"], [2])
  np.testing.assert_array_equal(ids["test"], [5])
  assert all(i.dtype == np.int32 for i in ids.values())
  unseen = [w for w in warnings() if "1 of 1 characters are not in the vocabulary" in w]
  assert len(unseen) == 1 and unseen[0].startswith("test split"), warnings()


def test_unseen_characters_are_counted_per_split(tmp_path, warnings):
  text = "abcabcabcabcabcabcab" + "x" + "yz"  # n = 23: train [0, 20), valid [20, 21), test
  ids, vocab = data.load(tmp_path, _write(tmp_path, text), level="char")
  assert vocab == ["a", "b", "c", "<unk>"]
  np.testing.assert_array_equal(ids["valid"], [3])
  np.testing.assert_array_equal(ids["test"], [3, 3])
  logged = warnings()
  assert any(w.startswith("valid split") and "1 of 1 characters" in w for w in logged), logged
  assert any(w.startswith("test split") and "2 of 2 characters" in w for w in logged), logged
  assert not any(w.startswith("train split") for w in logged), logged


# ---- the 90/5/5 split of one text file ---------------------------------------------------

# 102 characters: 14 lines "a b c", then "d", "a b d" [86, 92), "c b a" [92, 98), "d a" [98, 102).
# int(0.9 * 102) = 91 falls inside "a b d", int(0.95 * 102) = 96 inside "c b a".
LINES = "a b c\n" * 14 + "d\n" + "a b d\n" + "c b a\n" + "d a\n"


def _text_of(ids, vocab, level):
  tokens = [vocab[i] for i in ids]
  return "".join(tokens) if level == "char" else tokens


def test_char_split_is_nanogpts_exactly(tmp_path):
  ids, vocab = data.load(tmp_path, _write(tmp_path, LINES), level="char")
  assert _text_of(ids["train"], vocab, "char") == LINES[:91]  # ends "a b d", mid-line
  assert _text_of(ids["valid"], vocab, "char") == "\nc b "
  assert _text_of(ids["test"], vocab, "char") == "a\nd a\n"


def test_tiny_shakespeare_splits_as_nanogpt_does(shakespeare_file):
  """nanoGPT's shakespeare_char: 65 characters, the first 90% (1,003,854) train, the rest
  validates; ours keeps the last 5% of that for the test split."""
  ids, vocab = data.load("", str(shakespeare_file), "char")
  text = shakespeare_file.read_text(encoding="utf-8")
  assert vocab == sorted(set(text)) + [data.UNK]
  assert len(vocab) == 66 and vocab[:3] == ["\n", " ", "!"]
  assert [len(ids[split]) for split in data.SPLITS] == [1_003_854, 55_770, 55_770]
  assert _text_of(ids["train"], vocab, "char") == text[:1_003_854]
  assert _text_of(ids["valid"], vocab, "char") + _text_of(ids["test"], vocab, "char") == \
      text[1_003_854:]


def test_word_split_moves_each_cut_past_the_next_newline(tmp_path):
  ids, vocab = data.load(tmp_path, _write(tmp_path, LINES), level="word")
  train = _text_of(ids["train"], vocab, "word")
  assert len(train) == 14 * 4 + 2 + 4 and train[-4:] == ["a", "b", "d", "<eos>"]  # to 92
  assert _text_of(ids["valid"], vocab, "word") == ["c", "b", "a", "<eos>"]         # to 98
  assert _text_of(ids["test"], vocab, "word") == ["d", "a", "<eos>"]


def test_word_split_keeps_a_cut_that_is_already_at_a_line_start(tmp_path):
  ids, _ = data.load(tmp_path, _write(tmp_path, "ab\n" * 20), level="word")  # cuts 54 and 57
  assert [len(ids[split]) for split in data.SPLITS] == [36, 2, 2]


def test_any_script_is_legal(tmp_path):
  text = "春眠不觉晓 处处闻啼鸟\n" * 30 + "café naïve 🙂 🙂\n" * 10
  for level in data.LEVELS:
    ids, vocab = data.load(tmp_path, _write(tmp_path, text), level=level)
    assert all(len(ids[split]) for split in data.SPLITS)
    assert ("🙂" in vocab) and (("春" if level == "char" else "春眠不觉晓") in vocab)


# ---- words --------------------------------------------------------------------------------

@pytest.mark.parametrize("words,vocab_size,expected", [
    ("a a a b b c d", 3, ["a", "b", "<unk>"]),         # capped: 2 words and <unk>
    ("b a a", None, ["a", "b", "<unk>"]),               # no <unk> in the text: added last
    ("b a a", 10, ["a", "b", "<unk>"]),
    ("<unk> <unk> a b c", 3, ["<unk>", "a", "b"]),      # <unk> kept in its place
    ("a a b b <unk>", 2, ["a", "<unk>"]),               # <unk> too rare to be kept: added
    ("a a b b <unk>", 3, ["a", "b", "<unk>"]),
])
def test_word_vocabulary_cap(words, vocab_size, expected):
  assert data.build_vocab(words.split(), vocab_size) == expected


def test_words_beyond_the_cap_read_as_unk(tmp_path, warnings):
  for split, text in (("train", "the cat sat on the mat the end\n" * 20),
                      ("valid", "the dog\n"), ("test", "the end\n")):
    _write(tmp_path, text, f"{split}.txt")
  ids, vocab = data.load(tmp_path, level="word", vocab_size=3)
  # the: 60; then 20 each, by the word: <eos>, cat, end, ...; <unk> takes cat's place
  assert vocab == ["the", "<eos>", "<unk>"]
  assert [vocab[i] for i in ids["valid"]] == ["the", "<unk>", "<eos>"]
  logged = warnings()
  assert any(w.startswith("train split") and "100 of 180 words" in w for w in logged), logged
  assert any(w.startswith("valid split") and "1 of 3 words" in w for w in logged), logged


def test_a_data_dir_of_plain_names(tmp_path):
  for split, text in (("train", "a b a\n"), ("valid", "b c\n"), ("test", "a\n")):
    _write(tmp_path, text, f"{split}.txt")
  ids, vocab = data.load(tmp_path)
  assert vocab == ["a", "<eos>", "b", "<unk>"]
  np.testing.assert_array_equal(ids["valid"], [2, 3, 1])


def test_real_ptb_vocabulary_is_unchanged(ptb_dir):
  words = data.read_words(ptb_dir / "ptb.train.txt")
  counts = collections.Counter(words)
  before = [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
  digest = hashlib.sha256("\n".join(before).encode()).hexdigest()
  assert digest == "135c1cdfba9ba2627ec3793c69ec07de0dd88160d58aef56c285c140f4831094"
  for vocab_size in (10000, None):
    ids, vocab = data.load(ptb_dir, vocab_size=vocab_size)
    assert vocab == before
    np.testing.assert_array_equal(ids["train"][:5], [before.index(w) for w in words[:5]])


# ---- bad input: one line naming the file and what to do -----------------------------------

@pytest.mark.parametrize("content,needles", [
    (b"abc\x00def\n", ["input.txt is a binary file", "NUL byte at offset 3"]),
    (b"caf\xe9 au lait\n", ["input.txt is not UTF-8", "offset 3"]),
    (b"ab\xff\x00", ["is not UTF-8", "offset 2"]),      # the first problem is named
    (b"", ["input.txt is empty or only whitespace"]),
    (b" \n\t\n  ", ["input.txt is empty or only whitespace"]),
])
def test_bad_text_files(tmp_path, content, needles):
  with pytest.raises(UserError) as raised:
    data.load(tmp_path / "unused", _write(tmp_path, content), level="char")
  message = str(raised.value)
  assert "\n" not in message and all(needle in message for needle in needles), message


@pytest.mark.parametrize("text,level,needle", [
    ("a b c d e f g h i j " * 10, "word", "the valid split (characters 200-200 of 200) is "
     "empty"),                                           # one line: both cuts go to its end
    ("abcdefghijklmnopqr \n", "char", "the valid split (characters 18-19 of 20) is empty or "
     "only whitespace"),
])
def test_an_empty_split_is_an_error(tmp_path, text, level, needle):
  with pytest.raises(UserError, match=re.escape(f"input.txt: {needle}")):
    data.load(tmp_path, _write(tmp_path, text), level=level)


def test_bad_options(tmp_path):
  path = _write(tmp_path, "a b\n" * 50)
  with pytest.raises(UserError, match="level 'bytes' is unknown: use --level=word or"):
    data.load(tmp_path, path, level="bytes")
  with pytest.raises(UserError, match="vocab_size=1 is below 2"):
    data.load(tmp_path, path, vocab_size=1)
  with pytest.raises(UserError, match="nothing.txt does not exist"):
    data.load(tmp_path, tmp_path / "nothing.txt")
  with pytest.raises(UserError, match="input.txt is a file, not a directory: pass it as "
                     "--text_file"):
    data.load(path)


def test_a_data_dir_missing_files_lists_them(tmp_path, monkeypatch):
  _write(tmp_path, "a b\n", "train.txt")
  with pytest.raises(UserError, match="lacks valid.txt, test.txt: put all three of "
                     "train.txt, valid.txt, test.txt there"):
    data.load(tmp_path)
  def offline(url, dest):
    raise UserError(f"could not download {url} (no network)")
  monkeypatch.setattr(data.data_dirs, "download", offline)
  with pytest.raises(UserError, match="no text files in .*--text_file=PATH, or --data_dir "
                     "holding train.txt, valid.txt, test.txt"):
    data.load(tmp_path / "empty")


def test_an_empty_file_is_told_how_to_fix_it_for_what_it_is(tmp_path):
  for name, hint in (("ptb.valid.txt", "restore it from simple-examples.tgz"),
                     ("input.txt", "pass a file with text in it")):
    with pytest.raises(UserError) as raised:
      data.read_text(_write(tmp_path, "\n", name))
    assert str(raised.value).endswith(f"{name} is empty or only whitespace: {hint}")


# ---- tiny Shakespeare, the text characters read by default ----------------------------------

FAKE_SHAKESPEARE = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty per-user cache, $SHAKESPEARE_FILE unset, and downloads recorded: (cache root,
  the URLs fetched)."""
  monkeypatch.setattr(data.data_dirs, "CACHE_ROOT", tmp_path / "cache")
  monkeypatch.delenv(data.SHAKESPEARE_FILE, raising=False)
  fetched = []
  def download(url, destination):
    fetched.append(url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(FAKE_SHAKESPEARE)
  monkeypatch.setattr(data.data_dirs, "download", download)
  return tmp_path / "cache", fetched


def test_tiny_shakespeare_is_fetched_once_into_the_cache(cache, monkeypatch):
  root, fetched = cache
  monkeypatch.setattr(data, "SHAKESPEARE_SHA256", hashlib.sha256(FAKE_SHAKESPEARE).hexdigest())
  path = data.tiny_shakespeare()
  assert path == root / "shakespeare" / "input.txt" and path.read_bytes() == FAKE_SHAKESPEARE
  assert data.tiny_shakespeare() == path and fetched == [data.SHAKESPEARE_URL]  # once
  assert [p.name for p in path.parent.iterdir()] == ["input.txt"]  # no temporary left


def test_a_corrupt_tiny_shakespeare_download_is_refused_and_deleted(cache):
  root, fetched = cache
  with pytest.raises(UserError) as raised:
    data.tiny_shakespeare()
  message = str(raised.value)
  assert "has sha256" in message and "it is corrupt and was deleted; run again" in message
  assert list((root / "shakespeare").iterdir()) == []  # the next run fetches it anew
  with pytest.raises(UserError, match="corrupt"):
    data.tiny_shakespeare()
  assert len(fetched) == 2


def test_offline_without_tiny_shakespeare_says_how_to_provide_it(cache, monkeypatch):
  root, _ = cache
  def offline(url, destination):
    raise UserError(f"could not download {url} (no network)")
  monkeypatch.setattr(data.data_dirs, "download", offline)
  with pytest.raises(UserError) as raised:
    data.resolve_text_file("", "", "char")
  path = root / "shakespeare" / "input.txt"
  assert str(raised.value) == (
      f"no tiny Shakespeare at {path} and could not download {data.SHAKESPEARE_URL} (no "
      f"network): pass --text_file=FILE, put input.txt at {path}, or set $SHAKESPEARE_FILE=FILE")


def test_shakespeare_file_names_a_copy_and_nothing_is_fetched(cache, tmp_path, monkeypatch):
  _, fetched = cache
  copy = _write(tmp_path, "To be, or not to be\n", "shakespeare.txt")
  monkeypatch.setenv(data.SHAKESPEARE_FILE, str(copy))
  assert data.tiny_shakespeare() == copy and fetched == []
  monkeypatch.setenv(data.SHAKESPEARE_FILE, str(tmp_path / "gone.txt"))
  with pytest.raises(UserError, match=r"\$SHAKESPEARE_FILE=.*gone.txt is not a file: point it "
                     "at tiny Shakespeare's input.txt, or unset it"):
    data.tiny_shakespeare()


@pytest.mark.parametrize("text_file,data_dir,level,expected", [
    ("mine.txt", "", "char", "mine.txt"),   # a text given is read, at either level
    ("mine.txt", "", "word", "mine.txt"),
    ("", "", "char", "shakespeare"),        # characters and nothing given: tiny Shakespeare
    ("", "", "word", ""),                   # words: PTB, from the data directory
    ("", "DIR", "char", ""),                # a data directory given is read
])
def test_which_text_a_run_reads(cache, text_file, data_dir, level, expected):
  root, _ = cache
  (root / "shakespeare").mkdir(parents=True)
  (root / "shakespeare" / "input.txt").write_bytes(FAKE_SHAKESPEARE)  # in the cache already
  resolved = data.resolve_text_file(text_file, data_dir, level)
  assert resolved == (str(root / "shakespeare" / "input.txt") if expected == "shakespeare"
                      else expected)
  assert cache[1] == []


def test_the_pinned_checksum_is_tiny_shakespeares(shakespeare_file):
  assert shakespeare_file.stat().st_size == 1_115_394
  assert data.data_dirs.sha256_of(shakespeare_file) == data.SHAKESPEARE_SHA256


# ---- sampling ------------------------------------------------------------------------------

def test_top_k_never_draws_outside_the_k_most_likely():
  log_probs = np.log([0.05, 0.3, 0.02, 0.25, 0.08, 0.2, 0.1])  # top 3: ids 1, 3, 5
  rng = np.random.default_rng(0)
  drawn = collections.Counter(generate.choose(log_probs, 1.0, rng, top_k=3)
                              for _ in range(3000))
  assert set(drawn) == {1, 3, 5}
  assert drawn[1] / 3000 == pytest.approx(0.3 / 0.75, abs=0.04)  # renormalised over the k
  everything = {generate.choose(log_probs, 1.0, rng) for _ in range(3000)}
  assert everything == set(range(7))  # without top_k every id can come
  assert {generate.choose(log_probs, 2.0, rng, top_k=1) for _ in range(50)} == {1}
  assert generate.choose(log_probs, 0.0, rng, top_k=5) == 1  # greedy


def test_top_k_is_exactly_k_even_with_ties():
  rng = np.random.default_rng(1)
  drawn = {generate.choose(np.zeros(10), 1.0, rng, top_k=4) for _ in range(500)}
  assert len(drawn) == 4


@pytest.mark.slow
def test_generate_rejects_a_top_k_below_one(tmp_path):
  result = run_cli("ptb.generate", f"--model_dir={tmp_path}", "--top_k=0")
  assert_clean_error(result, "--top_k=0 is not positive", "leave --top_k out")
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---- the SavedModel --------------------------------------------------------------------------

CHAR_TEXT = "hello wörld\n日🙂 é"
CASED_WORDS = ["<eos>", "the", "The", "KING", "king", "<unk>"]


def _tiny_model(level, vocab):
  config = dataclasses.replace(configs.TestConfig(), level=level, vocab_size=len(vocab),
                               hidden_size=8)
  lm = model.PTBModel(config, "float32")
  lm.create_variables()
  return lm


@pytest.fixture(scope="module")
def char_export(tmp_path_factory):
  """(model_dir, in-process model, vocab) of a tiny untrained char model, exported."""
  model_dir = tmp_path_factory.mktemp("char_lm")
  vocab = data.char_vocab(CHAR_TEXT)
  lm = _tiny_model("char", vocab)
  export.export(lm, vocab, model_dir / "export")
  return model_dir, lm, vocab


def _in_process_log_prob(lm, ids):
  """Sum of log p(ids[t] | ids[:t]) for t >= 1, from the zero state, with the Python model."""
  if len(ids) < 2:
    return 0.0
  logits, _ = lm(np.array([ids[:-1]], np.int32), lm.zero_state(1))
  log_probs = tf.nn.log_softmax(tf.cast(logits[0], tf.float32)).numpy()
  return float(sum(log_probs[t, token] for t, token in enumerate(ids[1:])))


def test_char_export_scores_raw_strings_like_the_model(char_export):
  model_dir, lm, vocab = char_export
  exported = tf.saved_model.load(str(model_dir / "export"))
  assert export.read_level(exported) == "char" and export.read_vocabulary(exported) == vocab
  # multi-byte (é, ö, 日, 🙂), unseen (本, x, ü), a newline inside, and the empty string
  sentences = ["hé", "日本🙂", "hello\nwörld", "xü", ""]
  out = exported.signatures["score"](sentences=tf.constant(sentences))
  for i, sentence in enumerate(sentences):
    ids = [vocab.index("\n")] + [vocab.index(c) if c in vocab else vocab.index("<unk>")
                                 for c in sentence]  # from a line start, no closing newline
    assert out["num_tokens"][i] == len(sentence)
    np.testing.assert_allclose(out["log_prob"][i], _in_process_log_prob(lm, ids), atol=1e-5)
  scored = score.score(exported, sentences[:1])[0]
  assert scored.bits_per_char == pytest.approx(-scored.log_prob / 2 / np.log(2))
  assert scored.perplexity == pytest.approx(np.exp(-scored.log_prob / 2), rel=1e-5)


def test_char_export_without_newline_starts_from_unk(tmp_path):
  vocab = data.char_vocab("abc")
  lm = _tiny_model("char", vocab)
  exported = tf.saved_model.load(str(export.export(lm, vocab, tmp_path / "export")))
  log_prob = exported.signatures["score"](sentences=tf.constant(["ab"]))["log_prob"][0]
  np.testing.assert_allclose(log_prob, _in_process_log_prob(lm, [3, 0, 1]), atol=1e-5)


def test_word_export_keeps_the_case_it_was_trained_with(tmp_path):
  lm = _tiny_model("word", CASED_WORDS)
  exported = tf.saved_model.load(str(export.export(lm, CASED_WORDS, tmp_path / "export")))
  assert export.read_level(exported) == "word"
  sentences = ["The KING", "THE King zebra", "The\u3000KING "]  # U+3000: ideographic space
  out = exported.signatures["score"](sentences=tf.constant(sentences))
  # as typed where the vocabulary has it, else lower-cased (PTB's rule), else <unk>
  for i, ids in enumerate([[0, 2, 3, 0], [0, 1, 4, 5, 0], [0, 2, 3, 0]]):
    np.testing.assert_allclose(out["log_prob"][i], _in_process_log_prob(lm, ids), atol=1e-5)
    assert out["num_tokens"][i] == len(ids) - 1
  assert generate.tokenize("THE King zebra", CASED_WORDS, "word") == ["the", "king", "zebra"]


def test_step_signature_streams_the_char_model(char_export):
  model_dir, lm, _ = char_export
  exported = tf.saved_model.load(str(model_dir / "export"))
  ids = np.array([[0, 3, 5, 9]], np.int32)
  logits, final = lm(ids, lm.zero_state(1))
  state = exported.signatures["initial_state"](batch_size=tf.constant(1))["state"]
  for t in range(4):
    out = exported.signatures["step"](ids=tf.constant(ids[:, t]), state=state)
    state = out["state"]
    np.testing.assert_allclose(out["log_probs"][0], tf.nn.log_softmax(logits[0, t]), atol=1e-5)
  np.testing.assert_allclose(state, final, atol=1e-5)


def test_char_generation_is_repeatable_with_a_seed(char_export):
  model_dir, _, vocab = char_export
  exported = tf.saved_model.load(str(model_dir / "export"))
  runs = ["".join(generate.generate(exported, "hé日本", 40, 1.0, seed, top_k=4))
          for seed in (1, 1, 2)]
  assert runs[0] == runs[1] != runs[2]
  assert len(runs[0]) >= 40 and set(runs[0]) <= set(vocab) | set("<unk>")


@pytest.mark.slow
def test_generate_cli_on_a_char_model(char_export):
  model_dir, _, _ = char_export
  result = run_cli("ptb.generate", f"--model_dir={model_dir}", "--prime=hé本", "--num_words=30",
                   "--seed=3", "--top_k=5")
  assert result.returncode == 0, result.stderr
  note, text = result.stdout.split("\n", 1)
  assert note == "(not in the vocabulary, read as <unk>: '本')"
  exported = tf.saved_model.load(str(model_dir / "export"))
  assert text == "hé本" + "".join(generate.generate(exported, "hé本", 30, 1.0, 3, 5)) + "\n"


@pytest.mark.slow
def test_score_cli_on_a_char_model_prints_bits_per_char(char_export):
  model_dir, _, _ = char_export
  result = run_cli("ptb.score", f"--model_dir={model_dir}", "hé", "日🙂 ")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].split() == ["log_prob", "tokens", "perplexity", "bits/char", "sentence"]
  log_prob, tokens, perplexity, bits = lines[2].split()[:4]
  assert int(tokens) == 3 and float(bits) == pytest.approx(
      -float(log_prob) / 3 / np.log(2), abs=2e-3)
  assert float(perplexity) == pytest.approx(2 ** float(bits), rel=2e-3)


@pytest.mark.slow
def test_train_generate_and_score_a_unicode_text_end_to_end(tmp_path):
  text = ("To be, or not to be: that is the question.\n春眠不觉晓，处处闻啼鸟。🙂\n"
          "Café naïve, señor!\n") * 20
  path = _write(tmp_path, text)
  model_dir = tmp_path / "model"
  result = run_cli("ptb.main", "--model=test", f"--text_file={path}", "--level=char",
                   f"--model_dir={model_dir}", "--hidden_size=16")
  assert result.returncode == 0, result.stderr[-3000:]
  exported = tf.saved_model.load(str(model_dir / "export"))
  assert export.read_level(exported) == "char"
  assert export.read_vocabulary(exported) == data.load(tmp_path, path, level="char")[1]
  lines = (model_dir / "metadata.tsv").read_text(encoding="utf-8").splitlines()
  assert len(lines) == len(set(text[:int(0.9 * len(text))])) + 1 and "\\n" in lines
  generated = run_cli("ptb.generate", f"--model_dir={model_dir}", "--prime=春眠", "--seed=1")
  assert generated.returncode == 0 and generated.stdout.startswith("春眠"), generated.stderr
  scored = score.score(exported, ["To be", "春眠不觉晓"])
  assert [s.num_tokens for s in scored] == [5, 5] and all(s.bits_per_char > 0 for s in scored)
