"""XLA's persistent compilation cache: on by default; a half-written entry never breaks a run."""
import os
import pathlib
import subprocess
import sys

from common import xla_cache

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _field(number, payload):
  """One length-delimited protobuf field (payloads under 128 bytes)."""
  assert len(payload) < 128
  return bytes([number << 3 | 2, len(payload)]) + payload


def _entry(executable=b"machine code"):
  return _field(1, b"key") + _field(2, b"hlo module") + _field(3, executable)


def test_prune_deletes_cut_entries_and_keeps_whole_ones(tmp_path):
  whole = tmp_path / "xla_compile_cache__1__2__XLA_CPU_JIT.pb"
  whole.write_bytes(_entry())
  cases = {"cut_inside_a_field": _entry()[:-3],
           "cut_before_the_executable": _entry()[:len(_entry()) - len(_field(3, b"machine code"))],
           "empty_executable": _entry(executable=b""),
           "not_a_record": b"\xff" * 40,
           "empty_file": b""}
  for name, data in cases.items():
    (tmp_path / f"{name}.pb").write_bytes(data)
  (tmp_path / "notes.txt").write_bytes(b"\xff")  # not an entry: left alone

  deleted = xla_cache.prune(tmp_path)

  assert sorted(path.stem for path in deleted) == sorted(cases)
  assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", whole.name]


def test_prune_deletes_the_oldest_entries_over_the_size_limit(tmp_path):
  paths = []
  for age in range(4):
    path = tmp_path / f"entry{age}.pb"
    path.write_bytes(_entry(executable=b"x" * 100))
    os.utime(path, (1000 - age, 1000 - age))  # entry3 the oldest
    paths.append(path)
  size = paths[0].stat().st_size

  deleted = xla_cache.prune(tmp_path, max_bytes=2 * size)

  assert sorted(path.name for path in deleted) == ["entry2.pb", "entry3.pb"]
  assert sorted(path.name for path in tmp_path.iterdir()) == ["entry0.pb", "entry1.pb"]


def test_configure_points_tensorflow_at_the_folder(tmp_path):
  environ = {"XDG_CACHE_HOME": str(tmp_path), "TF_XLA_FLAGS": "--tf_xla_auto_jit=0"}
  folder = xla_cache.configure(environ)
  assert folder.parent == tmp_path / "rnn_tutorials" / "xla" and folder.is_dir()
  assert environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {xla_cache.FLAG}={folder}"

  chosen = {xla_cache.ENV_VAR: str(tmp_path / "mine")}
  folder = xla_cache.configure(chosen)
  assert folder.parent == tmp_path / "mine"
  assert chosen["TF_XLA_FLAGS"] == f"{xla_cache.FLAG}={folder}"


def test_executables_for_another_cpu_or_xla_options_are_kept_apart(tmp_path):
  """TensorFlow keys an entry by the program alone: an AVX-512 executable must not reach a CPU
  without AVX-512, nor one compiled under --xla_cpu_max_isa a run without it."""
  def folder(cpu_flags, **environ):
    cpuinfo = tmp_path / f"cpuinfo_{len(list(tmp_path.iterdir()))}"
    cpuinfo.write_text(f"model name\t: AMD EPYC\nflags\t\t: {cpu_flags}\n" * 2)
    return xla_cache.compiled_for(environ, cpuinfo=str(cpuinfo))

  avx512 = folder("fpu avx2 avx512f avx512_bf16")
  assert folder("fpu avx2 avx512f avx512_bf16") == avx512
  assert folder("fpu avx2") != avx512
  assert folder("fpu avx2 avx512f avx512_bf16", XLA_FLAGS="--xla_cpu_max_isa=AVX2") != avx512


def test_configure_leaves_a_users_settings_alone(tmp_path):
  off = {xla_cache.ENV_VAR: "off", "XDG_CACHE_HOME": str(tmp_path)}
  assert xla_cache.configure(off) is None and "TF_XLA_FLAGS" not in off
  own = {"TF_XLA_FLAGS": f"{xla_cache.FLAG}=/elsewhere", "XDG_CACHE_HOME": str(tmp_path)}
  assert xla_cache.configure(own) is None
  assert own["TF_XLA_FLAGS"] == f"{xla_cache.FLAG}=/elsewhere"
  assert not (tmp_path / "rnn_tutorials").exists()


STEP = """
import common, tensorflow as tf
@tf.function(jit_compile=True)
def step(x):
  return tf.reduce_sum(tf.tanh(x @ x))
print(float(step(tf.ones([32, 32]))))
"""


def _run_step(root):
  env = dict(os.environ, **{xla_cache.ENV_VAR: str(root)})
  env.pop("TF_XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-c", STEP], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)


def test_a_step_is_kept_and_a_half_written_entry_is_recompiled(tmp_path):
  first = _run_step(tmp_path)
  assert first.returncode == 0, first.stderr
  entries = list(tmp_path.glob("*/*.pb"))
  assert len(entries) == 1 and xla_cache.whole_entry(entries[0])

  # A process killed while TensorFlow wrote the entry: without the pruning, every later run
  # of the step fails ("Read less bytes than requested").
  with open(entries[0], "r+b") as f:
    f.truncate(entries[0].stat().st_size // 2)
  again = _run_step(tmp_path)
  assert again.returncode == 0, again.stderr
  assert again.stdout == first.stdout
  assert xla_cache.whole_entry(entries[0])  # compiled and written anew
