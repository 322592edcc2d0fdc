"""The PTB reader and batcher, on hand-worked cases."""
import numpy as np
import pytest

from common.errors import UserError
from ptb import configs, data


def test_batcher_windows_of_two_consecutive_batches():
  inputs, targets = data.windows(np.arange(15), batch_size=3, num_steps=2)
  # batch_len = 5, epoch_size = (5 - 1) // 2 = 2; rows are [0..4], [5..9], [10..14].
  assert inputs.shape == targets.shape == (2, 3, 2)
  np.testing.assert_array_equal(inputs[0], [[0, 1], [5, 6], [10, 11]])
  np.testing.assert_array_equal(targets[0], [[1, 2], [6, 7], [11, 12]])
  np.testing.assert_array_equal(inputs[1], [[2, 3], [7, 8], [12, 13]])
  np.testing.assert_array_equal(targets[1], [[3, 4], [8, 9], [13, 14]])


def test_batcher_drops_the_tail_like_the_tutorial():
  inputs, _ = data.windows(np.arange(17), batch_size=3, num_steps=2)
  assert inputs.shape[0] == 2  # 17 // 3 = 5 per row; tokens 15 and 16 are never read


def test_too_little_data_is_a_clear_error():
  with pytest.raises(UserError, match="too few for batch_size=3 x num_steps=5"):
    data.windows(np.arange(15), batch_size=3, num_steps=5)


def test_vocabulary_is_ordered_by_count_then_word(tmp_path):
  path = tmp_path / "ptb.train.txt"
  path.write_text(" b a c \n a b \n a \n")
  words = data.read_words(path)
  assert words == ["b", "a", "c", "<eos>", "a", "b", "<eos>", "a", "<eos>"]
  vocab = data.build_vocab(words)
  # a: 3, <eos>: 3 (tie broken by the word: '<' < 'a'), b: 2, c: 1; then <unk>, which the
  # text lacks, so that unseen words have an id
  assert vocab == ["<eos>", "a", "b", "c", "<unk>"]
  np.testing.assert_array_equal(data.to_ids(words, vocab), [2, 1, 3, 0, 1, 2, 0, 1, 0])


def test_unknown_words_map_to_unk():
  ids = data.to_ids(["a", "zebra", "<unk>"], ["<unk>", "a"], "valid")
  np.testing.assert_array_equal(ids, [1, 0, 0])


def test_real_ptb_counts(ptb_dir):
  ids, vocab = data.load(ptb_dir)
  assert len(vocab) == 10000
  assert {split: len(ids[split]) for split in data.SPLITS} == {
      "train": 929589, "valid": 73760, "test": 82430}
  assert vocab[:3] == ["the", "<unk>", "<eos>"]


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"\xff\xfe caf\xe9 \n", "is not UTF-8"),
])
def test_bad_files_are_clear_errors(tmp_path, content, message):
  path = tmp_path / "ptb.train.txt"
  path.write_bytes(content)
  with pytest.raises(UserError, match=message):
    data.read_words(path)


def test_some_files_missing_is_a_clear_error(tmp_path):
  (tmp_path / "ptb.train.txt").write_text("a b\n")
  with pytest.raises(UserError, match="lacks ptb.valid.txt, ptb.test.txt"):
    data.ensure_files(tmp_path)


def test_learning_rate_schedule():
  small = configs.SmallConfig()
  rates = [configs.learning_rate(small, epoch) for epoch in range(13)]
  assert rates[:4] == [1.0] * 4
  assert rates[4:7] == [0.5, 0.25, 0.125]
  assert rates[12] == 0.5 ** 9
  large = configs.LargeConfig()
  assert configs.learning_rate(large, 14) == pytest.approx(1 / 1.15)


def test_configs_share_fields_and_overrides():
  assert configs.get_config("medium", hidden_size=None).hidden_size == 650
  assert configs.get_config("large", max_max_epoch=2).max_max_epoch == 2
  assert configs.get_config("test").num_layers == 1


def _fake_archive(path, files):
  """A simple-examples.tgz laid out like Mikolov's, holding `files` (name -> bytes)."""
  import io  # pylint: disable=import-outside-toplevel
  import tarfile  # pylint: disable=import-outside-toplevel
  with tarfile.open(path, "w:gz") as tar:
    for name, content in files.items():
      info = tarfile.TarInfo(f"./simple-examples/data/{name}")
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))


def test_an_old_run_directorys_config_reads_as_todays(tmp_path):
  """config.json of a run that predates --lstm, --level, --cell and --optimizer: it resumes
  with the same settings (fused_lstm true: our LSTM, false: keras.layers.LSTM)."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  from ptb import train  # pylint: disable=import-outside-toplevel
  small = dataclasses.asdict(train.resolve(configs.SmallConfig(), None))  # as recorded
  old = {k: v for k, v in small.items()
         if k not in ("lstm", "level", "cell", "optimizer", "embedding_init")}
  for fused_lstm, lstm in ((True, "fast"), (False, "keras")):
    assert configs.upgrade({**old, "fused_lstm": fused_lstm}) == {**small, "lstm": lstm}
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(json.dumps({**old, "fused_lstm": True}))
  # Resumes (lstm=auto keeps the recorded implementation): no error.
  train.check_config(tmp_path, train.resolve(configs.SmallConfig(), tmp_path))
  with pytest.raises(UserError, match="lstm differ"):
    train.check_config(tmp_path, train.resolve(
        dataclasses.replace(configs.SmallConfig(), lstm="keras"), None))


def test_a_character_run_from_before_the_normal_embedding_resumes_only_as_it_was(tmp_path):
  """A char run whose config.json predates embedding_init started from the uniform embedding:
  today's char config (normal) is another run, --embedding_init=uniform resumes it."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  import json  # pylint: disable=import-outside-toplevel
  from ptb import train  # pylint: disable=import-outside-toplevel
  char = dataclasses.asdict(configs.CharConfig())
  old = {k: v for k, v in char.items() if k != "embedding_init"}
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(json.dumps(old))
  with pytest.raises(UserError, match="embedding_init differ"):
    train.check_config(tmp_path, configs.CharConfig())
  as_it_was = dataclasses.replace(configs.CharConfig(), embedding_init="uniform")
  train.check_config(tmp_path, as_it_was)  # resumes: no error


def test_download_extracts_and_verifies_the_archive(ptb_dir, tmp_path, monkeypatch):
  real = {name: (ptb_dir / name).read_bytes() for name in data.FILES.values()}
  fetched = []
  monkeypatch.setattr(data.data_dirs, "download",
                      lambda url, dest: fetched.append(url) or _fake_archive(dest, real))
  target = tmp_path / "ptb"
  data.ensure_files(target)
  assert fetched == [data.ARCHIVE_URL]
  for name, content in real.items():
    assert (target / name).read_bytes() == content
  data.ensure_files(target)  # present now: no second download
  assert len(fetched) == 1


def test_a_corrupt_download_is_refused(ptb_dir, tmp_path, monkeypatch):
  real = {name: (ptb_dir / name).read_bytes() for name in data.FILES.values()}
  real["ptb.valid.txt"] = real["ptb.valid.txt"].replace(b"the", b"teh", 1)
  monkeypatch.setattr(data.data_dirs, "download", lambda url, dest: _fake_archive(dest, real))
  with pytest.raises(UserError, match="ptb.valid.txt has sha256"):
    data.ensure_files(tmp_path)
  assert not (tmp_path / "ptb.valid.txt").exists()  # nothing half-verified is left in place


def test_offline_without_data_says_how_to_provide_it(tmp_path, monkeypatch):
  def offline(url, dest):
    raise UserError(f"could not download {url} (no network)")
  monkeypatch.setattr(data.data_dirs, "download", offline)
  with pytest.raises(UserError, match="download simple-examples.tgz yourself|pass --data_dir"):
    data.ensure_files(tmp_path)


def test_a_truncated_download_is_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(data.data_dirs, "download",
                      lambda url, dest: dest.write_bytes(b"\x1f\x8b\x08 truncated"))
  with pytest.raises(UserError, match="not a readable simple-examples archive"):
    data.ensure_files(tmp_path)
  assert not list(tmp_path.iterdir())  # the bad archive is gone; the next run fetches again
