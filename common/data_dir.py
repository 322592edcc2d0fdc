"""Where datasets live: flag, then environment variable, then a per-user cache; download once."""
import hashlib
import os
import pathlib
import socket
import tempfile
import urllib.parse
import urllib.request
import zipfile

from absl import logging

from common.errors import UserError

CACHE_ROOT = (pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
              / "rnn_tutorials")


def resolve(flag_value, env_var, name):
  """Returns the data directory: `--data_dir` if given, else `$env_var`, else the cache.

  Args:
    flag_value: the `--data_dir` flag ('' when unset).
    env_var: environment variable consulted next, e.g. 'PTB_DATA_DIR'.
    name: sub-folder of the per-user cache used last, e.g. 'ptb'.
  """
  chosen = flag_value or os.environ.get(env_var, "") or str(CACHE_ROOT / name)
  return pathlib.Path(chosen).expanduser()


def sha256_of(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def download(url, destination, timeout=60):
  """Downloads `url` to `destination` through a temporary file (no half-written files).

  Raises:
    UserError: when the download fails (offline machine, bad URL), naming the URL.
  """
  destination = pathlib.Path(destination)
  destination.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=destination.parent, prefix=".download-")
  try:
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
      for block in iter(lambda: response.read(1 << 20), b""):
        out.write(block)
    os.replace(tmp, destination)
  except OSError as e:
    raise UserError(f"could not download {url} ({e})") from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return destination


def fetch_once(path, url, sha256, what, alternatives, member=None):
  """`path`, downloaded from `url` the first time (its sha256 checked before it takes the
  name: a file there is always whole and right).

  Args:
    path: where the file lives in the cache, e.g. CACHE_ROOT / "shakespeare" / "input.txt".
    url: where it comes from.
    sha256: the file's (with `member`, the member's, not the archive's).
    what: its name in messages, e.g. "tiny Shakespeare".
    alternatives: how else to provide it, for the offline message ("pass --text_file=FILE").
    member: the file is this member of a zip archive at `url`.

  Raises:
    UserError: offline (or any failed download) with no copy at `path`, saying how to provide
      one; a download that is not the expected file (then nothing is kept).
  """
  path = pathlib.Path(path)
  if path.exists():
    return path
  fetched = path.with_name(f".{path.name}.download")
  partial = path.with_name(f".{path.name}.partial")
  try:
    logging.info("%s not found at %s; downloading %s", what, path, url)
    try:
      download(url, fetched)
    except UserError as e:
      raise UserError(f"no {what} at {path} and {e}: {alternatives}") from None
    content = fetched.read_bytes() if member is None else _zip_member(fetched, member)
    actual = hashlib.sha256(content).hexdigest()
    if actual != sha256:
      got = url if member is None else f"{url}'s {member}"
      raise UserError(f"the download of {got} has sha256 {actual[:12]}..., not {sha256[:12]}"
                      "...: it is corrupt and was deleted; run again to fetch it anew")
    partial.write_bytes(content)
    partial.rename(path)
  finally:
    fetched.unlink(missing_ok=True)
    partial.unlink(missing_ok=True)
  return path


def _zip_member(path, member):
  """The bytes of `member` of the zip file at `path`; b"" if it is no zip or lacks it."""
  try:
    with zipfile.ZipFile(path) as archive:
      return archive.read(member)
  except (zipfile.BadZipFile, KeyError):
    return b""


def check_reachable(url, timeout=10):
  """Raises OSError within about `timeout` seconds when `url`'s host takes no connections.

  For downloaders that retry for minutes before giving up offline (tensorflow-datasets:
  3.5 minutes on our offline CI machine, measured): ask once, quickly, first.
  """
  parts = urllib.parse.urlsplit(url)
  port = parts.port or (443 if parts.scheme == "https" else 80)
  try:
    socket.create_connection((parts.hostname, port), timeout=timeout).close()
  except OSError as e:
    raise OSError(f"cannot reach {parts.hostname}: {e}") from None


def verify_sha256(path, expected):
  """Raises UserError if the file's sha256 differs from `expected`."""
  actual = sha256_of(path)
  if actual != expected:
    raise UserError(f"{path} has sha256 {actual[:12]}..., expected {expected[:12]}...: "
                    "the file is corrupt or a different version; delete it and fetch it again")
