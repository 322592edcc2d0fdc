"""seq2seq's data layer on hand-worked cases: standardisation, vocabularies, the pairs file and
its split, the dates and reversal tasks, and the padded batches."""
import dataclasses
import datetime
import hashlib
import io
import os
import pathlib
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from common.errors import UserError
from seq2seq import configs, data, dates


def test_standardisation_of_the_tutorials_example_and_of_what_it_drops():
  assert data.standardize(["¿Todavía están en casa?"]) == ["¿ todavía están en casa ?"]
  # Apostrophes, digits and quotes go; accented capitals are lower-cased; ¡ and , are tokens;
  # a tab and a no-break space separate words as a space does.
  assert data.standardize(["I'm  30, «ÉL»\tdijo:\xa0¡Hola!", " \t "]) == [
      "im , él dijo ¡ hola !", ""]
  # word_bare (Géron's yardstick: Keras' lower_and_strip_punctuation) keeps the words only.
  assert data.standardize(["¿Todavía están en casa?", "I'm  30, ¡Hola!"], "word_bare") == [
      "todavía están en casa", "im hola"]
  # Characters keep everything but case and runs of whitespace.
  assert data.standardize(["  Dec. 5th\t'26 ", "05-DEC-2026"], "char") == [
      "dec. 5th '26", "05-dec-2026"]


def test_the_graph_tokenizer_gives_the_python_tokens():
  texts = ["¿ todavía están en casa ?", "sábado, 5", ""]
  for level in configs.LEVELS:
    tokens = data.tf_tokenize(data.tf_standardize(tf.constant(texts), level), level)
    standardized = data.standardize(texts, level)
    assert [[t.decode() for t in row] for row in tokens.to_list()] == [
        data.tokens_of(text, level) for text in standardized]


def test_vocabulary_order_cap_unknown_tokens_and_decoding():
  texts = ["b d c", "b a", "b a"]
  # b: 3, a: 2, then c and d (1 each) in code-point order; 6 ids hold the reserved 4, b and a.
  assert data.Vocabulary.build(texts).tokens[4:] == ["b", "a", "c", "d"]
  vocab = data.Vocabulary.build(texts, max_size=6)
  assert vocab.tokens == ["[PAD]", "[UNK]", "[START]", "[END]", "b", "a"]
  np.testing.assert_array_equal(vocab.encode("a d b"), [5, 1, 4])
  assert vocab.encode("a").dtype == np.int32
  assert vocab.decode([2, 5, 1, 4, 3, 4, 0]) == "a [UNK] b"   # stops at [END]
  chars = data.Vocabulary.build(["2026-12-05"], level="char")
  assert chars.tokens[4:] == ["2", "-", "0", "1", "5", "6"]      # 2: 3; - and 0: 2 ('-' < '0')
  assert chars.decode(chars.encode("2026-12-05")) == "2026-12-05"


def test_a_saved_vocabulary_reads_back(tmp_path):
  vocab = data.Vocabulary.build(["sábado, 5", "¿ y ?"], level="char")
  vocab.save(tmp_path / "vocab.json")
  read = data.Vocabulary.load(tmp_path / "vocab.json")
  assert (read.tokens, read.level) == (vocab.tokens, "char") and " " in read.tokens


def test_a_vocabulary_without_room_for_a_token_is_a_user_error():
  with pytest.raises(UserError, match="vocab_size=4 leaves no room"):
    data.Vocabulary.build(["a"], max_size=4)


def _pairs_file(tmp_path, lines):
  path = tmp_path / "pairs.txt"
  path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
  return path


def test_pairs_of_one_english_sentence_share_a_split_and_the_direction(tmp_path):
  lines = [f"I see {word}.\t{spanish} {word}." for word in
           ("ab ac ad ae af ag ah ai aj ak al am an ao ap aq ar as at au av aw ax ay az ba bb "
            "bc bd be bf bg bh bi bj bk bl bm bn bo bp bq br bs bt").split()
           for spanish in ("Veo", "Miro", "¡Veo")]
  path = _pairs_file(tmp_path, lines)
  splits = data.load_pairs(path, seed=0)
  split_of = {}
  for split, pairs in splits.items():
    for source, target in pairs:
      assert source.split()[0] in ("veo", "miro", "¡")     # Spanish -> English by default
      assert split_of.setdefault(target, split) == split  # every translation in one split
  assert sum(map(len, splits.values())) == len(lines)
  assert 0.6 < len(splits["train"]) / len(lines) < 0.95
  assert data.load_pairs(path, seed=0) == splits                   # stable
  assert data.load_pairs(path, seed=1) != splits                   # the seed moves sentences
  reversed_splits = data.load_pairs(path, reverse=True, seed=0)
  assert reversed_splits["test"] == [(t, s) for s, t in splits["test"]]
  sampled = data.load_pairs(path, seed=0, sizes=(10, 0, 0))
  assert len(sampled["train"]) == 10 and set(sampled["train"]) <= set(splits["train"])


def test_a_cut_by_pair_puts_translations_of_one_sentence_in_several_splits(tmp_path):
  """Géron's random cut (split_unit=pair): each line falls on its own, so an English sentence
  seen in training can come back in validation with another Spanish sentence."""
  words = [a + b for a in "abcdefghij" for b in "klmnopqrst"]  # 100 (digits standardise away)
  lines = [f"I see {word}.\tVeo {word} {variant}." for word in words for variant in "wxyz"]
  path = _pairs_file(tmp_path, lines)
  splits = data.load_pairs(path, seed=0, unit="pair")
  assert sum(map(len, splits.values())) == len(lines)
  assert 0.7 < len(splits["train"]) / len(lines) < 0.9
  english = {split: {target for _, target in pairs} for split, pairs in splits.items()}
  assert english["train"] & english["validation"] and english["train"] & english["test"]
  by_sentence = data.load_pairs(path, seed=0)
  english = {split: {target for _, target in pairs} for split, pairs in by_sentence.items()}
  assert not english["train"] & english["validation"] and not english["train"] & english["test"]
  assert data.load_pairs(path, seed=0, unit="pair") == splits      # stable
  with pytest.raises(UserError, match="use --split_unit=sentence or pair"):
    data.load_pairs(path, unit="line")


def test_geron_cuts_by_pair_and_older_runs_read_as_cut_by_sentence():
  assert configs.get_config("geron").split_unit == "pair"
  assert configs.get_config("spa_eng").split_unit == "sentence"
  # A run directory from before split_unit was recorded was cut by sentence: resuming it as
  # `geron` would mix two splits, so the upgraded file differs from the config.
  old = {k: v for k, v in dataclasses.asdict(configs.get_config("geron")).items()
         if k != "split_unit"}
  assert configs.upgrade(old)["split_unit"] == "sentence"


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"Go.\tVe.\nHi.\tHola\xe9.\n", r"not UTF-8 text \(invalid byte at offset 16, line 2\)"),
    ("Go.\tVe.\nHi. Hola.\nRun!\tCorre.\n".encode(), "line 2: 0 tabs, expected exactly one"),
    ("Go.\tVe.\tCC-BY 2.0\n".encode(), "line 1: 2 tabs.*attribution column"),
    ("Go.\tVe.\n\t¡Hola!\n".encode(), "line 2: a sentence is empty"),
])
def test_bad_pairs_files_are_one_line_user_errors(tmp_path, content, message):
  path = tmp_path / "spa.txt"
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(UserError, match=message) as error:
    data.read_pairs(path)
  assert "\n" not in str(error.value) and str(path) in str(error.value)


@pytest.fixture
def cache(tmp_path, monkeypatch):
  """An empty per-user cache; `fetches` counts the downloads, which serve `served` bytes."""
  monkeypatch.setattr(data.data_dirs, "CACHE_ROOT", tmp_path / "cache")
  served = {"bytes": b"", "fetches": 0}

  def download(url, destination, timeout=60):
    assert url == data.SPA_ENG_URL
    served["fetches"] += 1
    pathlib.Path(destination).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(destination).write_bytes(served["bytes"])
  monkeypatch.setattr(data.data_dirs, "download", download)
  return served


def _zip(members):
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as archive:
    for name, text in members.items():
      archive.writestr(name, text)
  return buffer.getvalue()


def test_spa_eng_is_fetched_once_from_the_tutorials_zip(cache, monkeypatch):
  text = "Go.\tVe.\nHi.\tHola.\n".encode()
  monkeypatch.setattr(data, "SPA_ENG_SHA256", hashlib.sha256(text).hexdigest())
  cache["bytes"] = _zip({"spa-eng/_about.txt": "about", data.SPA_ENG_MEMBER: text})
  path = data.spa_eng_file()
  assert path.read_bytes() == text and path.parent.name == "spa-eng"
  assert data.spa_eng_file() == path and cache["fetches"] == 1  # the cached copy from now on
  assert [p.name for p in path.parent.iterdir()] == ["spa.txt"]  # no download left behind


def test_a_wrong_or_failed_spa_eng_download_keeps_nothing_and_says_what_to_do(cache,
                                                                              monkeypatch):
  cache["bytes"] = _zip({data.SPA_ENG_MEMBER: "Go.\tVe.\n"})  # not the tutorial's text
  with pytest.raises(UserError, match="spa-eng.zip's spa-eng/spa.txt has sha256 .* corrupt"):
    data.spa_eng_file()
  cache["bytes"] = b"<html>not a zip</html>"
  with pytest.raises(UserError, match="has sha256 .* corrupt"):  # no zip at all
    data.spa_eng_file()
  assert not list((data.data_dirs.CACHE_ROOT / "spa-eng").iterdir())

  def offline(url, destination, timeout=60):
    raise UserError(f"could not download {url} (no network)")
  monkeypatch.setattr(data.data_dirs, "download", offline)
  with pytest.raises(UserError, match=r"no spa.txt at .* and could not download .*: pass "
                     r"--pairs_file=FILE .* or set \$SPA_ENG_FILE=FILE"):
    data.load(configs.SpaEngConfig())


def test_the_real_spa_eng_file():
  path = os.environ.get("SPA_ENG_FILE")
  if not path or not pathlib.Path(path).is_file():
    pytest.skip("$SPA_ENG_FILE does not point at the tutorial's spa-eng/spa.txt")
  splits = data.load_pairs(path)
  sizes = {split: len(pairs) for split, pairs in splits.items()}
  assert sum(sizes.values()) == 118_964
  assert 0.79 < sizes["train"] / 118_964 < 0.81 and 0.09 < sizes["test"] / 118_964 < 0.11
  assert ("¿ todavía están en casa ?", "are you still at home ?") in [
      pair for pairs in splits.values() for pair in pairs]
  english = {split: {target for _, target in pairs} for split, pairs in splits.items()}
  assert not english["train"] & english["test"] and not english["train"] & english["validation"]


# --- dates -----------------------------------------------------------------------------------

SATURDAY = datetime.date(2026, 12, 5)
WRITTEN = {  # by hand, for Saturday 5 December 2026
    "iso": "2026-12-05", "iso_basic": "20261205", "year_slash": "2026/12/05",
    "year_dot": "2026.12.05", "day_slash": "05/12/2026", "day_slash_unpadded": "5/12/2026",
    "us_two_digit": "12/05/26", "german": "5.12.2026", "german_two_digit": "05.12.26",
    "day_month": "5 December 2026", "day_mon": "5 Dec 2026", "month_day": "December 5, 2026",
    "mon_day": "Dec 5, 2026", "ap_style": "Dec. 5, 2026", "mon_suffixed": "Dec 5th 2026",
    "month_suffixed": "December 5th, 2026", "suffixed_month": "5th December 2026",
    "ordinal_words": "the fifth of December, 2026",
    "weekday_day_month": "Saturday, 5 December 2026",
    "weekday_month_day": "Saturday, December 5, 2026", "rfc_2822": "Sat, 05 Dec 2026",
    "oracle": "05-DEC-2026", "mon_day_apostrophe": "Dec 5 '26",
    "spanish": "5 de diciembre de 2026", "spanish_weekday": "sábado, 5 de diciembre de 2026",
}


def test_every_date_format_by_hand():
  assert {name: write(SATURDAY) for name, write in dates.FORMATS.items()} == WRITTEN
  assert len(set(s.lower() for s in WRITTEN.values())) == len(WRITTEN) >= 20
  assert [dates.suffixed(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
      "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"]
  assert [dates.ORDINALS[d - 1] for d in (1, 12, 20, 21, 29, 30, 31)] == [
      "first", "twelfth", "twentieth", "twenty-first", "twenty-ninth", "thirtieth",
      "thirty-first"]
  assert dates.FORMATS["spanish_weekday"](datetime.date(1600, 1, 1)).startswith("sábado")


def test_numeric_formats_read_back_with_strptime_as_documented():
  readings = {"iso": "%Y-%m-%d", "year_slash": "%Y/%m/%d", "day_slash": "%d/%m/%Y",
              "day_slash_unpadded": "%d/%m/%Y", "us_two_digit": "%m/%d/%y",
              "german": "%d.%m.%Y", "german_two_digit": "%d.%m.%y", "oracle": "%d-%b-%Y",
              "weekday_month_day": "%A, %B %d, %Y", "rfc_2822": "%a, %d %b %Y"}
  for day in (datetime.date(1969, 1, 31), datetime.date(2068, 2, 29), datetime.date(2000, 11, 9)):
    for name, reading in readings.items():
      assert datetime.datetime.strptime(dates.FORMATS[name](day), reading).date() == day, name


def test_generated_dates_are_their_targets_with_one_reading_each():
  pairs = dates.pairs(6000, seed=3)
  reading, used = {}, set()
  for source, target in pairs:
    day = datetime.date.fromisoformat(target)
    assert target == day.isoformat()
    names = {name for name, write in dates.FORMATS.items() if write(day) == source}
    assert names, source                                  # the source writes its target's date
    assert reading.setdefault(source.lower(), target) == target, source   # one reading
    if names <= set(dates.TWO_DIGIT_YEAR_FORMATS):
      assert 1969 <= day.year <= 2068                     # as strptime's %y reads it
    used |= names
  assert used == set(dates.FORMATS)
  assert {day[:2] for _, day in pairs} == {"16", "17", "18", "19", "20", "21"}  # six centuries


def _config(**fields):
  return dataclasses.replace(configs.TestConfig(), **fields)


@pytest.mark.parametrize("task", ["dates", "reverse"])
def test_generated_tasks_are_seeded_disjoint_and_standardised(task):
  config = _config(task=task, train_size=300, validation_size=50, test_size=100)
  splits = data.load(config)
  assert {split: len(pairs) for split, pairs in splits.items()} == {
      "train": 300, "validation": 50, "test": 100}
  sources = [{source for source, _ in splits[split]} for split in data.SPLITS]
  assert sum(map(len, sources)) == 450                    # distinct within and across splits
  assert data.load(config) == splits
  assert data.load(dataclasses.replace(config, data_seed=1)) != splits
  bigger = data.load(dataclasses.replace(config, train_size=400))
  assert bigger["test"] == splits["test"]                 # more training data, same test set
  for source, _ in splits["train"]:
    assert source == source.lower().strip()


def test_the_reversal_task():
  splits = data.load(_config(min_length=2, max_length=9, train_size=2000))
  lengths = {len(source) for pairs in splits.values() for source, _ in pairs}
  assert lengths == set(range(2, 10))
  for source, target in splits["train"]:
    assert target == source[::-1] and set(source) <= set(data.REVERSE_SYMBOLS)
  with pytest.raises(UserError, match="too many to draw"):
    data.load(_config(min_length=1, max_length=1))


# --- batches ---------------------------------------------------------------------------------


def test_batches_of_three_pairs_by_hand():
  source_vocab = data.Vocabulary(list(data.RESERVED) + ["a", "b", "c", "d", "e", "f"])
  target_vocab = data.Vocabulary(list(data.RESERVED) + ["w", "x", "y", "z"])
  examples = data.encode([("a b", "x"), ("c", "y z"), ("d e f", "w")], source_vocab,
                         target_vocab)
  [((source, decoder_input), decoder_target)] = list(data.batches(examples, batch_size=3))
  a, b, c, d, e, f, w, x, y, z, S, E = 4, 5, 6, 7, 8, 9, 4, 5, 6, 7, 2, 3
  np.testing.assert_array_equal(source, [[a, b, 0], [c, 0, 0], [d, e, f]])
  np.testing.assert_array_equal(decoder_input, [[S, x, 0], [S, y, z], [S, w, 0]])
  np.testing.assert_array_equal(decoder_target, [[x, E, 0], [y, z, E], [w, E, 0]])
  assert source.dtype == decoder_input.dtype == decoder_target.dtype == tf.int32
  # two rows, then the third alone: each batch padded to its own longest row
  shapes = [(s.shape, t.shape) for (s, _), t in data.batches(examples, batch_size=2)]
  assert shapes == [((2, 2), (2, 3)), ((1, 3), (1, 2))]


def test_training_batches_are_seeded_per_epoch_hold_every_example_once_and_by_length():
  rng = np.random.default_rng(0)
  examples = [(np.arange(1, n + 1, dtype=np.int32) + 3, np.int32([4, 5]))
              for n in rng.integers(1, 30, 500)]
  lengths = [(len(s), len(t)) for s, t in examples]
  order = data.batch_order(lengths, 8, seed=5, epoch=0)
  assert sorted(order) == list(range(500))
  np.testing.assert_array_equal(order, data.batch_order(lengths, 8, seed=5, epoch=0))
  assert not np.array_equal(order, data.batch_order(lengths, 8, seed=5, epoch=1))
  np.testing.assert_array_equal(data.batch_order(lengths, 8), np.arange(500))
  real = sum(length for length, _ in lengths)

  def padding(dataset):
    return 1 - real / sum(int(tf.size(source)) for (source, _), _ in dataset)

  assert padding(data.batches(examples, 8, seed=5)) < 0.1 < 0.3 < padding(
      data.batches(examples, 8))                           # the buckets cut the padding
