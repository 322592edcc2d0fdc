"""Proves the GPU path in one command: the GPU is seen, the tests that mean something
on it pass, the train steps are fast, and the medium model trains. See tools/README.md.

Usage: bash tools/gpu_check.sh OUT_DIR [--dry_run] [--wheels DIR] [--budget_s 600]

Steps, each bounded in time and each recorded in OUT_DIR/gpu_check.json however it ends:
  1. nvidia-smi, and TensorFlow's view of the GPU (name, compute capability);
  2. pip install requirements-gpu.txt once, into a directory of its own (--site_dir), from a
     wheel directory on an offline machine (--wheels DIR or $GPU_CHECK_WHEELS);
  3. the GPU_TESTS selection of the test suite;
  4. the train steps a user gets, with the default flags (ptb medium and large, mnist_rnn; on a
     GPU, common/devices.py picks cuDNN without XLA in float32), then the explicit variants,
     each with the path it ran (LSTM, cuDNN, XLA, precision);
  5. ptb medium training with the default flags: all 39 epochs if the measured words/s say they
     fit in the budget, else as many as fit (rerunning resumes), valid perplexity per epoch
     beside the tutorial's, and the path it ran.
--dry_run takes the same steps on the CPU with the test config and a few steps of each.
Only the standard library here: it runs before TensorFlow is installed.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import pathlib
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The tests whose numbers change on a GPU (pytest -k): our LSTM against keras.layers.LSTM, which
# runs cuDNN there; every fast path against the float32 reference; mixed precision; tf.distribute's
# mirrored replicas against one device; and the exports, which must hold no cuDNN op.
GPU_TESTS = ("keras or fast_paths_match or written_out_backward or mixed_precision "
             "or two_replicas or mirrored or no_cudnn_op")
DRY_RUN_TESTS = "our_lstm_equals_keras or keras_lstm_starts_like_ours"  # seconds on a CPU
# name: (module, config, flags). First what a user gets, the default flags (common/devices.py
# decides: on a GPU keras.layers.LSTM on cuDNN, without XLA, float32 run as TF32), then the
# explicit variants.
BENCHMARKS = {
    "ptb_medium_default": ("ptb.benchmark", "medium", []),
    "ptb_large_default": ("ptb.benchmark", "large", []),
    "mnist_rnn_default": ("mnist_rnn.benchmark", "tutorial", []),
    "ptb_medium_keras_mixed_bfloat16": ("ptb.benchmark", "medium", [
        "--lstm=keras", "--precision=mixed_bfloat16", "--nojit_compile"]),
    "ptb_medium_fast_xla": ("ptb.benchmark", "medium", ["--lstm=fast", "--jit_compile"]),
}
TRAIN_BENCHMARK = "ptb_medium_default"  # the step the training run takes, for its estimate
TRAIN_FLAGS = []  # the defaults: what a user's `python -m ptb.main --model=medium` runs
DRY_RUN_STEPS = ["--steps=2", "--repeats=2"]
# The test config in windows of 1,000 words, not 40, over 1,000 word types, not 10,000: an epoch
# of 100 (synthetic) or 929 (PTB) steps, seconds on a CPU.
DRY_RUN_TRAIN_FLAGS = ["--num_steps=20", "--batch_size=50", "--vocab_size=1000"]

BUDGET_S = 600  # the whole check, installs included
CAPS_S = {"nvidia_smi": 30, "probe": 180, "install": 360, "tests": 240, "benchmark": 120}
RESERVE_S = 5  # kept back from each step for writing the report
MIN_STEP_S = 10  # a step with less time than this left is skipped, not started
TRAIN_OVERHEAD_S = 60  # ptb.main around its epochs: start, tracing, the test pass, the export

PTB_WORDS = {"train": 929_589, "valid": 73_760}  # the real data (the synthetic: 100,000 each)
SYNTHETIC_WORDS = 100_000
MEDIUM_EPOCHS = 39
TUTORIAL_MEDIUM = {"valid_perplexity": 86.16, "test_perplexity": 82.07}  # after 39 epochs
TARGETS = {  # name: (comparison, bound)
    "ptb_medium_train_words_per_second": (">=", 100_000),
    "ptb_large_train_words_per_second": (">=", 40_000),
    "ptb_medium_test_perplexity": ("<=", 82.7),
}

PROBE = """
import json
import tensorflow as tf
gpus = [tf.config.experimental.get_device_details(g)
        for g in tf.config.list_physical_devices("GPU")]
build = tf.sysconfig.get_build_info()
print(json.dumps({
    "tensorflow_version": tf.__version__,
    "gpus": [{"name": g.get("device_name"),
              "compute_capability": ".".join(map(str, g.get("compute_capability") or ()))}
             for g in gpus],
    "built_with_cuda": build.get("cuda_version"), "built_with_cudnn": build.get("cudnn_version"),
    "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled()}))
"""


class Check:
  """What the steps share: the arguments, the clock, the environment they run in, the report."""

  def __init__(self, args):
    self.args = args
    self.out = args.out_dir
    self.started = time.monotonic()
    self.deadline = self.started + args.budget_s
    self.site = None  # where requirements-gpu.txt went, once TensorFlow is taken from there
    self.view = None  # the last TensorFlow probe, while the steps' environment is unchanged
    self.ptb_data = _ptb_data_dir(args.dry_run)
    self.report = {"dry_run": args.dry_run, "budget_seconds": args.budget_s,
                   "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                   "machine": machine(), "steps": {}}

  def remaining(self):
    return self.deadline - time.monotonic()

  def say(self, message):
    print(f"[{time.monotonic() - self.started:5.0f}s] {message}", flush=True)

  def env(self):
    """The environment of every step: the repository (and the install) on the path."""
    env = dict(os.environ)
    paths = [str(ROOT)] + ([str(self.site)] if self.site else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # the logs say which GPU, CUDA and cuDNN were loaded
    if self.args.dry_run:
      env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, even on a GPU machine
    return env

  def save(self):
    """Writes the report as it stands, atomically: a reader never sees half of it."""
    self.report["wall_seconds"] = round(time.monotonic() - self.started, 1)
    fd, tmp = tempfile.mkstemp(dir=self.out, prefix=".gpu_check-", suffix=".json")
    with os.fdopen(fd, "w") as f:
      json.dump(self.report, f, indent=2)
      f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp's file is the owner's alone
    os.replace(tmp, self.out / "gpu_check.json")

  def run(self, name, command, cap, stdout_name=None, env=None):
    """Runs `command` from the repository root for at most `cap` seconds (fewer when the
    budget is nearly spent), logging to OUT_DIR/NAME.log.

    Args:
      stdout_name: a file in OUT_DIR for stdout alone (a JSON result); else the log has it.

    Returns:
      {"status": ok, failed, timeout or out_of_time (not started), "command", "log", ...}
    """
    timeout = min(cap, self.remaining() - RESERVE_S)
    record = {"command": shlex.join(map(str, command)), "log": f"{name}.log"}
    if timeout < MIN_STEP_S:
      return dict(record, status="out_of_time", error=f"{self.remaining():.0f} s left")
    start = time.monotonic()
    with contextlib.ExitStack() as files:
      log = files.enter_context(open(self.out / f"{name}.log", "w"))
      stdout = files.enter_context(open(self.out / stdout_name, "w")) if stdout_name else log
      process = subprocess.Popen(
          list(map(str, command)), cwd=ROOT, env=env or self.env(), stdin=subprocess.DEVNULL,
          stdout=stdout, stderr=log if stdout_name else subprocess.STDOUT,
          start_new_session=True)  # its own process group: a timeout ends its children too
      try:
        returncode = process.wait(timeout=timeout)
      except subprocess.TimeoutExpired:
        _kill_group(process)
        returncode = None
    record.update(returncode=returncode, seconds=round(time.monotonic() - start, 1),
                  timeout_seconds=round(timeout))
    if returncode == 0:
      return dict(record, status="ok")
    if returncode is None:
      return dict(record, status="timeout",
                  error=f"ran past {timeout:.0f} s: {_tail(self.out / f'{name}.log')}")
    return dict(record, status="failed", error=_tail(self.out / f"{name}.log"))


def _kill_group(process):
  """Ends a timed-out step and whatever it started (pytest's subprocesses, say)."""
  for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
    with contextlib.suppress(ProcessLookupError):
      os.killpg(process.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
      process.wait(timeout=grace)


def _tail(path, lines=3):
  """The last non-empty lines of a log: usually the error."""
  text = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
  return " | ".join(text[-lines:])[-600:] or "(no output)"


def _ptb_data_dir(dry_run):
  """The real PTB files if this machine has them: $PTB_DATA_DIR, then (not in a dry run, which
  must stay quick) ptb.main's own cache. None: train on synthetic data."""
  cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
  candidates = [os.environ.get("PTB_DATA_DIR")] + ([] if dry_run else [cache / "rnn_tutorials/ptb"])
  for path in filter(None, candidates):
    if all((pathlib.Path(path) / f"ptb.{s}.txt").is_file() for s in ("train", "valid", "test")):
      return pathlib.Path(path)
  return None


def machine():
  memory = next((line.split()[1] for line in _read_lines("/proc/meminfo")
                 if line.startswith("MemTotal")), None)
  cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
              if line.startswith("model name")), platform.processor())
  return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpu": cpu,
          "cpu_count": os.cpu_count(),
          "memory_gib": round(int(memory) / 2 ** 20, 1) if memory else None,
          "python": platform.python_version(), "python_executable": sys.executable}


def _read_lines(path):
  try:
    return pathlib.Path(path).read_text().splitlines()
  except OSError:
    return []


# --- the steps: each takes the Check and returns its record -----------------------------------


def nvidia_smi(check):
  if shutil.which("nvidia-smi") is None:
    return {"status": "skipped" if check.args.dry_run else "failed",
            "error": "nvidia-smi not found"}
  record = check.run("nvidia_smi", ["nvidia-smi"], CAPS_S["nvidia_smi"])
  print((check.out / "nvidia_smi.log").read_text(errors="replace"), flush=True)
  fields = ["name", "driver_version", "memory.total", "compute_cap"]
  query = check.run("nvidia_smi_query", ["nvidia-smi", f"--query-gpu={','.join(fields)}",
                                         "--format=csv,noheader"], CAPS_S["nvidia_smi"])
  if query["status"] == "ok":
    rows = (check.out / "nvidia_smi_query.log").read_text().strip().splitlines()
    record["gpus"] = [dict(zip(fields, (v.strip() for v in row.split(",")))) for row in rows]
  return record


def probe(check, name):
  """TensorFlow's view of the GPUs in the steps' environment (`gpus` empty: it sees none)."""
  record = check.run(name, [sys.executable, "-c", PROBE], CAPS_S["probe"],
                     stdout_name=f"{name}.json")
  record["command"] = f"{sys.executable} -c PROBE  # tools/gpu_check.py"
  if record["status"] == "ok":
    lines = (check.out / f"{name}.json").read_text().strip().splitlines() or [""]
    try:
      record.update(json.loads(lines[-1]))
    except ValueError:
      record.update(status="failed", error=f"no JSON from the probe: {lines[-1][:200]!r}")
  return record


def install(check):
  """Installs requirements-gpu.txt unless TensorFlow already sees a GPU; the probes say what
  it found. The install goes to --site_dir, put before the interpreter's own packages on the
  steps' path, so that what the machine came with (PyTorch's CUDA) is left as it was."""
  check.view = found = probe(check, "tensorflow_before_install")
  probes = {"before_install": found}
  if found.get("gpus"):
    return {"status": "skipped", "probes": probes,
            "reason": f"TensorFlow {found['tensorflow_version']} already sees a GPU"}
  if check.args.dry_run:
    return {"status": "skipped", "probes": probes, "reason": "dry run: no install for the CPU"}
  site = check.args.site_dir
  if (site / "tensorflow").is_dir():
    check.site = site
    check.view = probes["site_dir"] = found = probe(check, "tensorflow_in_site_dir")
    if found.get("gpus"):
      return {"status": "skipped", "probes": probes, "reason": f"installed before in {site}"}
  command = [sys.executable, "-m", "pip", "install", "--upgrade", "--target", site,
             "-r", ROOT / "requirements-gpu.txt"]
  wheels = check.args.wheels
  # Offline, from the wheels alone; online, a missing network fails in seconds, not minutes.
  command += ["--no-index", "--find-links", wheels] if wheels else ["--timeout=20", "--retries=1"]
  check.say(f"installing requirements-gpu.txt into {site}"
            + (f" from {wheels}" if wheels else " from the package index"))
  record = check.run("install", command, CAPS_S["install"])
  if record["status"] == "ok":
    check.site, check.view = site, None
  return dict(record, probes=probes, site_dir=str(site), wheels=str(wheels) if wheels else None)


def tensorflow_view(check):
  """Prints and records what TensorFlow sees, in the environment the later steps get."""
  record = dict(check.view) if check.view else probe(check, "tensorflow")
  gpus = record.get("gpus") or []
  if record["status"] == "ok" and not gpus and not check.args.dry_run:
    record.update(status="failed", error="TensorFlow sees no GPU (tensorflow.log)")
  smi = check.report.get("nvidia_smi", {}).get("gpus") or [{}]
  check.report.update(
      gpu_name=gpus[0]["name"] if gpus else smi[0].get("name"),
      compute_capability=gpus[0]["compute_capability"] if gpus else smi[0].get("compute_cap"),
      tensorflow_version=record.get("tensorflow_version"))
  check.say(f"TensorFlow {record.get('tensorflow_version')} sees "
            + (", ".join(f"{g['name']} (compute capability {g['compute_capability']})"
                         for g in gpus) or "no GPU")
            + f"; TF32 matmuls: {record.get('tensor_float_32')}")
  return record


def tests(check):
  selection = DRY_RUN_TESTS if check.args.dry_run else GPU_TESTS
  env = check.env()
  env.pop("TF_CPP_MIN_LOG_LEVEL")  # the suite runs as a developer runs it
  env.update({k: v for k, v in os.environ.items() if k == "TF_CPP_MIN_LOG_LEVEL"})
  if check.ptb_data:
    env["PTB_DATA_DIR"] = str(check.ptb_data)  # the tests on real text run too
  xml = check.out / "tests.xml"
  with contextlib.suppress(FileNotFoundError):
    xml.unlink()  # counts from an earlier run would read as this one's
  record = check.run("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "--continue-on-collection-errors", "-k", selection,
                               f"--junitxml={xml}", "tests"], CAPS_S["tests"], env=env)
  record.update(selection=selection, **_junit_counts(xml))
  if record.get("passed") == 0 and record["status"] == "ok":
    record.update(status="failed", error=f"no test passed: does -k {selection!r} still match?")
  check.say(f"tests: {record.get('passed')} passed, {record.get('failed')} failed, "
            f"{record.get('errors')} errors, {record.get('skipped')} skipped ({record['status']})")
  return record


def _junit_counts(path):
  """passed/failed/errors/skipped and the names of the failures, from pytest's JUnit XML."""
  if not path.exists():
    return {"passed": None, "failed": None, "errors": None, "skipped": None}
  suites = ElementTree.parse(path).getroot().iter("testsuite")
  counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
  failed_tests = []
  for suite in suites:
    for key in counts:
      counts[key] += int(suite.get(key, 0))
    failed_tests += ["::".join(filter(None, (case.get("classname"), case.get("name"))))
                     for case in suite.iter("testcase")
                     if case.find("failure") is not None or case.find("error") is not None]
  return {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
          "failed": counts["failures"], "errors": counts["errors"], "skipped": counts["skipped"],
          "failed_tests": failed_tests}


def benchmarks(check):
  """Each benchmark in its own process (a fresh GPU), the defaults first; the report grows as
  they finish."""
  results = check.report.setdefault("benchmarks", {})
  extra = DRY_RUN_STEPS if check.args.dry_run else []
  commands = {name: ["-m", module, f"--model={'test' if check.args.dry_run else model}", *flags,
                     *extra]
              for name, (module, model, flags) in BENCHMARKS.items()}
  for name, args in commands.items():
    same = next((earlier for earlier in results if commands.get(earlier) == args), None)
    if same:  # a dry run times the test config for medium and large alike: once is enough
      results[name] = {"status": "skipped", "reason": f"the same command as {same}"}
      continue
    results[name] = benchmark(check, name, [sys.executable, *args])
    check.save()
  failed = [name for name, r in results.items() if r["status"] not in ("ok", "skipped")]
  return {"status": "failed" if failed else "ok", "failed": failed}


def benchmark(check, name, command):
  record = check.run(f"benchmark_{name}", command, CAPS_S["benchmark"],
                     stdout_name=f"benchmark_{name}.json")
  if record["status"] != "ok":
    check.say(f"{name} {record['status']}: {record.get('error')}")
    return record
  try:
    result = json.loads((check.out / f"benchmark_{name}.json").read_text())
    record.update(_rates(result), model=_config_name(command))
  except (ValueError, KeyError, TypeError) as e:  # a benchmark whose JSON changed shape
    return dict(record, status="failed", error=f"unreadable result: {type(e).__name__}: {e}")
  check.say(f"{name:32s} {record['per_second']:12,.0f} train {record['unit']}/s  utilisation "
            f"{record['utilisation']:.4f} of {record['peak_float32_matmul_flops_per_second']:.3g} "
            f"FLOP/s  ran: {record['path']}")
  return record


def path(lstm, cudnn, jit_compile, precision):
  """Which path a step ran, in words: "lstm keras (cuDNN), XLA off, float32"."""
  return (f"lstm {lstm}{' (cuDNN)' if cudnn else ''}, XLA {'on' if jit_compile else 'off'}, "
          f"{precision}")


def _rates(result):
  """The numbers the report keeps from a benchmark's JSON."""
  train, evaluation, unit = result["train"], result["eval"], result.get("unit", "words")
  return {"precision": result.get("precision"), "device": result.get("device"), "unit": unit,
          "lstm": result["lstm"], "cudnn": result["cudnn"], "jit_compile": result["jit_compile"],
          "path": path(result["lstm"], result["cudnn"], result["jit_compile"],
                       result.get("precision")),
          "per_second": train["per_second_median"],
          f"train_{unit}_per_second": train["per_second_median"],
          "utilisation": train["utilisation"], "ms_per_step": train["ms_per_step"],
          "eval_per_second": evaluation["per_second_median"],
          "eval_ms_per_step": evaluation["ms_per_step"],
          "peak_float32_matmul_flops_per_second": result["peak_float32_matmul_flops_per_second"]}


def _config_name(command):
  return next((a.split("=", 1)[1] for a in command if str(a).startswith(("--model=", "--config="))),
              "tutorial")


def training(check):
  """ptb medium (the test config in a dry run) for as many epochs as the budget holds."""
  dry = check.args.dry_run
  model = "test" if dry else "medium"
  model_dir = check.out / f"ptb_{model}"
  full = 1 if dry else MEDIUM_EPOCHS
  done = len(_read_json(model_dir / "history.json") or [])
  record = {"model": model, "model_dir": str(model_dir), "epochs_full": full,
            "epochs_before": done, "data": str(check.ptb_data) if check.ptb_data else "synthetic",
            "tutorial": TUTORIAL_MEDIUM}
  epochs = full if dry else _epochs_that_fit(check, record, done, full)
  if epochs <= done and done < full:  # no estimate (a failed benchmark says why) or no time
    return dict(record, status="out_of_time" if "estimate" in record else "skipped")
  extra = [f"--data_dir={check.ptb_data}"] if check.ptb_data else ["--use_synthetic_data"]
  extra += DRY_RUN_TRAIN_FLAGS if dry else []
  check.say(f"training ptb {model} to epoch {epochs} of {full} ({record['data']} data)")
  start = time.time()
  record.update(check.run("training", [sys.executable, "-m", "ptb.main", f"--model={model}",
                                       f"--model_dir={model_dir}", f"--max_max_epoch={epochs}",
                                       *TRAIN_FLAGS, *extra], check.remaining()),
                epochs_planned=epochs)
  record.update(_training_results(check, model_dir, full, start))
  record["path"] = _training_path(check, model_dir)
  check.say(f"training ran: {record['path']}")
  return record


def _training_path(check, model_dir):
  """The path the training ran, from its config.json (what the defaults resolved to)."""
  trained = _read_json(model_dir / "config.json")
  if not trained:
    return None
  # cuDNN: the keras path on a GPU without XLA, for the cells it has (common/devices.py).
  gpu = bool((check.report.get("tensorflow") or {}).get("gpus")) and not check.args.dry_run
  cudnn = (gpu and trained["lstm"] == "keras" and not trained["jit_compile"]
           and trained.get("cell", "lstm") in ("lstm", "gru"))
  return path(trained["lstm"], cudnn, trained["jit_compile"], trained["precision"])


def _epochs_that_fit(check, record, done, full):
  """The epoch to train to: all of them if the benchmarked words/s say they fit, else as many
  as fit in the time left."""
  measured = check.report.get("benchmarks", {}).get(TRAIN_BENCHMARK, {})
  if measured.get("status") != "ok":
    record["reason"] = f"no {TRAIN_BENCHMARK} benchmark to estimate an epoch from"
    return done
  words = PTB_WORDS if check.ptb_data else {"train": SYNTHETIC_WORDS, "valid": SYNTHETIC_WORDS}
  epoch_seconds = (words["train"] / measured["per_second"]
                   + words["valid"] / measured["eval_per_second"])
  left = check.remaining() - RESERVE_S - TRAIN_OVERHEAD_S
  fit = max(math.floor(left / epoch_seconds), 0)
  record["estimate"] = {"epoch_seconds": round(epoch_seconds, 1), "seconds_left": round(left),
                        "epochs_that_fit": fit}
  if fit == 0:
    record["error"] = f"an epoch takes about {epoch_seconds:.0f} s; {left:.0f} s left"
  return min(full, done + fit)


def _training_results(check, model_dir, full, start):
  """Per-epoch perplexities from history.json; the test perplexity once all epochs are done."""
  history = _read_json(model_dir / "history.json") or []
  rows = [{"epoch": h["epoch"], "valid_perplexity": round(h["valid_perplexity"], 3),
           "train_perplexity": round(h["train_perplexity"], 3),
           "words_per_second": round(h.get("words_per_second") or 0)} for h in history]
  metrics_path = model_dir / "metrics.json"
  fresh = metrics_path.exists() and metrics_path.stat().st_mtime >= start  # from this run
  test = (_read_json(metrics_path) or {}).get("test_perplexity") if fresh else None
  finished = len(rows) >= full and test is not None
  print(f"epoch  valid perplexity   (tutorial, medium after {MEDIUM_EPOCHS} epochs: "
        f"{TUTORIAL_MEDIUM['valid_perplexity']} valid / {TUTORIAL_MEDIUM['test_perplexity']} test)")
  for row in rows:
    print(f"{row['epoch']:5d}  {row['valid_perplexity']:16.2f}   {row['words_per_second']:8,d} "
          "words/s")
  if test is not None:
    print(f"test perplexity {test:.2f}" + ("" if finished else f" (after {len(rows)} epochs)"))
  return {"epochs_total": len(rows), "history": rows, "finished": finished,
          "test_perplexity": test if finished else None,
          "test_perplexity_unfinished": None if finished else test}


def _read_json(path):
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def targets(report):
  """Each target met, not met or not run (a dry run runs the test config: none apply)."""
  benches = report.get("benchmarks", {})

  def best(prefix):
    rates = [r["per_second"] for name, r in benches.items()
             if name.startswith(prefix) and r.get("status") == "ok"]
    return max(rates, default=None)

  trained = report.get("training") or {}
  values = {"ptb_medium_train_words_per_second": best("ptb_medium_"),
            "ptb_large_train_words_per_second": best("ptb_large_"),
            "ptb_medium_test_perplexity": (trained.get("test_perplexity")
                                           if trained.get("data") != "synthetic" else None)}
  results = {}
  for name, (comparison, bound) in TARGETS.items():
    value = None if report["dry_run"] else values[name]
    met = value is not None and (value >= bound if comparison == ">=" else value <= bound)
    results[name] = {"target": f"{comparison} {bound:,}", "value": value,
                     "status": "not run" if value is None else "met" if met else "not met"}
  return results


STEPS = [("nvidia_smi", nvidia_smi), ("install", install), ("tensorflow", tensorflow_view),
         ("tests", tests), ("benchmarks", benchmarks), ("training", training)]


def run_step(check, name, step):
  """Runs one step; whatever happens in it goes in the report, and the next step runs.

  The report gets the step's record under its name (the benchmarks fill in their own) and its
  status under "steps".
  """
  check.say(f"--- {name}")
  start = time.monotonic()
  try:
    record = step(check)
  except Exception as e:  # pylint: disable=broad-except  # a bug here must not lose the rest
    record = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
  record.setdefault("seconds", round(time.monotonic() - start, 1))
  if name != "benchmarks":
    check.report[name] = record
  check.report["steps"][name] = {key: record[key] for key in ("status", "seconds", "error",
                                                              "reason") if key in record}
  if record["status"] != "ok":
    check.say(f"{name} {record['status']}: {record.get('error') or record.get('reason')}")
  check.save()


class _Parser(argparse.ArgumentParser):

  def error(self, message):  # one line, not argparse's usage block
    self.exit(2, f"gpu_check: error: {message} (usage: tools/gpu_check.sh OUT_DIR [--dry_run] "
                 "[--wheels DIR])\n")


def parse_args(argv):
  parser = _Parser(prog="gpu_check", description=__doc__.splitlines()[0])
  parser.add_argument("out_dir", metavar="OUT_DIR", type=pathlib.Path,
                      help="where gpu_check.json and the logs go")
  parser.add_argument("--dry_run", action="store_true",
                      help="the same steps on the CPU with the test config, in a minute or two")
  parser.add_argument("--wheels", type=pathlib.Path, default=os.environ.get("GPU_CHECK_WHEELS"),
                      help="install offline from this wheel directory ($GPU_CHECK_WHEELS)")
  version = f"py{sys.version_info.major}{sys.version_info.minor}"
  parser.add_argument("--site_dir", type=pathlib.Path, default=os.environ.get(
      "GPU_CHECK_SITE", f"~/.cache/rnn_tutorials/gpu-site-packages-{version}"),
                      help="the install goes here, once ($GPU_CHECK_SITE)")
  parser.add_argument("--budget_s", type=float, default=BUDGET_S,
                      help="wall seconds for the whole check (default %(default)s)")
  args = parser.parse_args(argv)
  if args.budget_s <= 0:
    parser.error(f"--budget_s must be > 0, not {args.budget_s}")
  if args.out_dir.exists() and not args.out_dir.is_dir():
    parser.error(f"OUT_DIR {args.out_dir} is a file, not a directory")
  if args.wheels and not pathlib.Path(args.wheels).is_dir():
    parser.error(f"--wheels / $GPU_CHECK_WHEELS {args.wheels} is not a directory")
  try:
    args.out_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    parser.error(f"cannot create OUT_DIR {args.out_dir}: {e.strerror}")
  args.out_dir = args.out_dir.resolve()
  args.site_dir = args.site_dir.expanduser().resolve()
  return args


def main(argv=None):
  check = Check(parse_args(argv))
  check.say(f"gpu_check{' --dry_run' if check.args.dry_run else ''} into {check.out}, "
            f"{check.args.budget_s:.0f} s budget")
  check.save()  # a report exists from the start, even if the check is killed
  for name, step in STEPS:
    run_step(check, name, step)
  check.report["targets"] = targets(check.report)
  check.save()
  for name, target in check.report["targets"].items():
    check.say(f"{name:36s} {target['target']:>10s}  {target['value']}  {target['status']}")
  bad = [n for n, r in check.report["steps"].items() if r["status"] not in ("ok", "skipped")]
  check.say(f"report: {check.out / 'gpu_check.json'}"
            + (f"; steps that did not pass: {', '.join(bad)}" if bad else "; every step passed"))
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
