"""XLA's persistent compilation cache: a rerun or resumed run skips most of its compilation.

XLA compiles each `jit_compile` step on its first call: on our 2-core CPU the character
model's training step takes 25 s and its evaluation step 10 s, a fifth of a three-epoch run.
TensorFlow can keep the compiled executables on disk (`--tf_xla_persistent_cache_directory` in
TF_XLA_FLAGS) and load them in the next process whose step is the same program (the HLO is
compared in full, so a different model or shape compiles anew); the same step then starts in
9.8 s and 4.5 s (PERFORMANCE.md). `configure()`, run by `common`'s import, turns it on in
~/.cache/rnn_tutorials/xla (or $XDG_CACHE_HOME's); RNN_TUTORIALS_XLA_CACHE names another
folder, or `off`. A TF_XLA_FLAGS that already names a cache folder is left as it is.

TensorFlow's key for an entry is the step's program and the device type, not the CPU it was
compiled for nor XLA's options: an executable built with AVX-512 would be loaded on a CPU
without it (a home folder shared between machines), or one built under
XLA_FLAGS=--xla_cpu_max_isa=AVX2 by a run without that cap. So the entries live in a
subfolder named by a hash of what they were compiled for (`compiled_for`): the CPU's model
and flags, TensorFlow's version and XLA_FLAGS.

TensorFlow 2.21 writes an entry in place, and a process killed while writing leaves a
truncated file that fails every later run of that step ("Read less bytes than requested").
So before TensorFlow reads the folder, `prune()` deletes every entry that is not a whole
record (its fields must end exactly at the end of the file, the compiled executable last and
not empty), and the oldest entries while the folder holds more than MAX_BYTES. Two processes
compiling the same new step at the same moment can still meet a half-written entry: run such
processes with RNN_TUTORIALS_XLA_CACHE=off or with folders of their own.

No TensorFlow here: this module runs before TensorFlow is imported.
"""
import hashlib
import importlib.metadata
import os
import pathlib
import platform

ENV_VAR = "RNN_TUTORIALS_XLA_CACHE"
FLAG = "--tf_xla_persistent_cache_directory"
MAX_BYTES = 2 << 30   # a config's two steps take 10 to 40 MB
SUFFIX = ".pb"        # TensorFlow's entry files: xla_compile_cache__<fingerprints>__<device>.pb
# XlaSerializedCacheEntry's fields (tensorflow/compiler/jit/xla_compilation_cache.proto):
# key = 1, hlo_module = 2, executable = 3, each length-delimited, written in that order.
EXECUTABLE_FIELD = 3


def default_dir(environ):
  cache_home = environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
  return pathlib.Path(cache_home).expanduser() / "rnn_tutorials" / "xla"


def compiled_for(environ, cpuinfo="/proc/cpuinfo"):
  """What an executable is compiled for: the CPU, TensorFlow's version and XLA_FLAGS."""
  cpu = platform.machine()
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      lines = [line for line in f if line.startswith(("model name", "flags", "Features"))]
    cpu += "".join(sorted(set(lines)))  # one line of each kind per core, alike
  except OSError:
    cpu += platform.processor()
  try:
    tensorflow = importlib.metadata.version("tensorflow")
  except importlib.metadata.PackageNotFoundError:
    tensorflow = "unknown"
  return "\n".join([cpu, tensorflow, environ.get("XLA_FLAGS", "")])


def configure(environ=None):
  """Points TF_XLA_FLAGS at the cache folder (after pruning it); returns the folder or None."""
  environ = os.environ if environ is None else environ
  if FLAG in environ.get("TF_XLA_FLAGS", ""):
    return None  # the user's own cache settings
  chosen = environ.get(ENV_VAR, "").strip()
  if chosen.lower() in ("off", "0", "false", "no", "none"):
    return None
  root = pathlib.Path(chosen).expanduser() if chosen else default_dir(environ)
  folder = root / hashlib.sha256(compiled_for(environ).encode()).hexdigest()[:16]
  try:
    folder.mkdir(parents=True, exist_ok=True)
    prune(folder)
  except OSError:
    return None  # a read-only home: compile every time, as without the cache
  environ["TF_XLA_FLAGS"] = f"{environ.get('TF_XLA_FLAGS', '')} {FLAG}={folder}".strip()
  return folder


def prune(folder, max_bytes=MAX_BYTES):
  """Deletes `folder`'s entries that are not whole records, then the oldest over max_bytes.

  Returns the paths deleted."""
  deleted, kept = [], []
  for path in folder.glob("*" + SUFFIX):
    try:
      if whole_entry(path):
        kept.append((path.stat().st_mtime, path.stat().st_size, path))
        continue
      path.unlink()
      deleted.append(path)
    except OSError:
      continue  # gone meanwhile, or another user's: leave it
  total = sum(size for _, size, _ in kept)
  for _, size, path in sorted(kept):
    if total <= max_bytes:
      break
    try:
      path.unlink()
      deleted.append(path)
      total -= size
    except OSError:
      continue
  return deleted


def _varint(f):
  """The next base-128 varint of file `f`, or None at the end of the file or past 10 bytes."""
  value = 0
  for shift in range(0, 70, 7):
    byte = f.read(1)
    if not byte:
      return None
    value |= (byte[0] & 0x7F) << shift
    if byte[0] < 0x80:
      return value
  return None


def whole_entry(path):
  """Whether `path` holds whole length-delimited fields up to its last byte, the executable
  among them and not empty. Reads only the fields' headers."""
  size = path.stat().st_size
  executable = False
  with open(path, "rb") as f:
    position = 0
    while position < size:
      tag = _varint(f)
      length = _varint(f) if tag is not None else None
      if tag is None or length is None or tag & 7 != 2:  # 2: length-delimited
        return False
      position = f.tell() + length
      if position > size:
        return False  # cut short
      executable = executable or (tag >> 3 == EXECUTABLE_FIELD and length > 0)
      f.seek(position)
  return executable
