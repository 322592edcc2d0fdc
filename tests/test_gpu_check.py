"""tools/gpu_check.sh: the dry run takes every step on the CPU and writes the whole report, and a
bad command line is one line of error."""
import json
import math
import shutil
import subprocess
import sys
import types

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import gpu_check  # pylint: disable=wrong-import-position

SCRIPT = ROOT / "tools" / "gpu_check.sh"


def run_check(*args, timeout=400):
  return subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  """(CompletedProcess, report, OUT_DIR) of one dry run."""
  out = tmp_path_factory.mktemp("gpu_check")
  result = run_check(out, "--dry_run")
  assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
  return result, json.loads((out / "gpu_check.json").read_text()), out


@pytest.mark.slow  # the dry run: 90 to 130 s on our 2 shared cores
def test_dry_run_reports_every_step_with_its_log(dry_run):
  result, report, out = dry_run
  assert report["dry_run"] is True
  assert set(report["steps"]) == {name for name, _ in gpu_check.STEPS}
  bad = [name for name, step in report["steps"].items() if step["status"] not in ("ok", "skipped")]
  assert result.returncode == (1 if bad else 0), (bad, result.stdout[-3000:])
  assert report["machine"]["cpu_count"] >= 1 and report["machine"]["python"]
  assert report["tensorflow_version"].startswith("2.")
  assert report["nvidia_smi"]["status"] == ("ok" if shutil.which("nvidia-smi") else "skipped")
  assert report["install"]["status"] == "skipped"  # a dry run installs nothing
  records = [report[name] for name in report["steps"] if name != "benchmarks"]
  records += list(report["benchmarks"].values())
  logs = [record["log"] for record in records if "log" in record and record["status"] != "skipped"]
  assert {"tests.log", "training.log", "benchmark_mnist_rnn_default.log"} <= set(logs)
  for log in logs:
    assert (out / log).stat().st_size > 0, log
  assert not list(out.glob(".gpu_check-*"))  # written through a temporary file, renamed


@pytest.mark.slow
def test_dry_run_tests_pass_and_are_counted(dry_run):
  tests = dry_run[1]["tests"]
  assert tests["selection"] == gpu_check.DRY_RUN_TESTS
  assert tests["passed"] >= 2 and tests["failed"] == 0, tests


@pytest.mark.slow
def test_dry_run_benchmarks_report_positive_rates(dry_run):
  result, report, _ = dry_run
  benchmarks = report["benchmarks"]
  assert list(benchmarks) == list(gpu_check.BENCHMARKS)  # the defaults first
  for name in ("ptb_medium_default", "mnist_rnn_default", "ptb_medium_keras_mixed_bfloat16",
               "ptb_medium_fast_xla"):
    record = benchmarks[name]
    assert record["status"] == "ok", record
    assert record["per_second"] > 0 and 0 < record["utilisation"] < 1, record
    assert record["peak_float32_matmul_flops_per_second"] > 0
    assert f"ran: {record['path']}" in result.stdout  # printed, which path ran
  assert benchmarks["ptb_medium_default"]["train_words_per_second"] > 0
  assert benchmarks["ptb_medium_default"]["model"] == "test"
  # What a user gets on a CPU (the dry run hides any GPU): the fast LSTM, no cuDNN.
  for name in ("ptb_medium_default", "mnist_rnn_default"):
    assert benchmarks[name]["path"].startswith("lstm fast, XLA "), benchmarks[name]
  assert benchmarks["ptb_medium_keras_mixed_bfloat16"]["path"] == (
      "lstm keras, XLA off, mixed_bfloat16")
  assert benchmarks["ptb_medium_fast_xla"]["path"].startswith("lstm fast, XLA on, ")
  # Medium and large are both the test config in a dry run: timed once.
  assert benchmarks["ptb_large_default"]["status"] == "skipped"


@pytest.mark.slow
def test_dry_run_trains_an_epoch_and_leaves_the_targets_unjudged(dry_run):
  report = dry_run[1]
  training = report["training"]
  assert training["status"] == "ok", training
  assert training["epochs_total"] == 1 and training["finished"]
  valid = training["history"][0]["valid_perplexity"]
  assert math.isfinite(valid) and valid > 1
  assert math.isfinite(training["test_perplexity"])
  assert "valid perplexity" in dry_run[0].stdout  # the per-epoch table is printed
  assert training["path"].startswith("lstm fast, XLA on, ")  # the defaults, on the CPU
  assert f"training ran: {training['path']}" in dry_run[0].stdout
  assert set(report["targets"]) == set(gpu_check.TARGETS)
  assert {t["status"] for t in report["targets"].values()} == {"not run"}


def test_the_defaults_are_benchmarked_and_trained_first():
  """What a user gets (no flags) comes before the explicit variants, and trains."""
  flags = [flags for _, _, flags in gpu_check.BENCHMARKS.values()]
  defaults = [name for name, (_, _, flags) in gpu_check.BENCHMARKS.items() if not flags]
  assert list(gpu_check.BENCHMARKS)[:len(defaults)] == defaults
  assert {module for module, _, flags in gpu_check.BENCHMARKS.values() if not flags} == {
      "ptb.benchmark", "mnist_rnn.benchmark"}
  assert all(flags[len(defaults):])
  assert gpu_check.TRAIN_FLAGS == [] and gpu_check.TRAIN_BENCHMARK in defaults
  assert gpu_check.path("keras", True, False, "float32") == "lstm keras (cuDNN), XLA off, float32"


def test_targets_are_met_or_not_from_the_best_variant():
  report = {"dry_run": False, "training": {"test_perplexity": 82.5, "data": "/data/ptb"},
            "benchmarks": {"ptb_medium_default": {"status": "ok", "per_second": 90_000},
                           "ptb_medium_keras_mixed_bfloat16": {"status": "ok",
                                                               "per_second": 120_000},
                           "ptb_large_default": {"status": "timeout"}}}
  targets = gpu_check.targets(report)
  assert targets["ptb_medium_train_words_per_second"]["status"] == "met"
  assert targets["ptb_large_train_words_per_second"]["status"] == "not run"
  assert targets["ptb_medium_test_perplexity"]["status"] == "met"
  report["training"]["data"] = "synthetic"  # its perplexity says nothing about the tutorial's
  assert gpu_check.targets(report)["ptb_medium_test_perplexity"]["status"] == "not run"


@pytest.mark.parametrize("make_args,needle", [
    (lambda tmp_path: [], "OUT_DIR"),
    (lambda tmp_path: [tmp_path / "a_file", "--dry_run"], "is a file"),
    (lambda tmp_path: [tmp_path / "out", "--wheels", tmp_path / "missing"], "not a directory"),
])
def test_bad_arguments_are_one_line_and_a_nonzero_exit(make_args, needle, tmp_path):
  (tmp_path / "a_file").write_text("")
  result = run_check(*make_args(tmp_path), timeout=60)
  assert result.returncode != 0
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert needle in result.stderr and "gpu_check: error:" in result.stderr
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seconds_left,done,expected", [
    (2000, 0, 39),   # all 39 epochs and the overhead fit
    (167, 0, 10),    # (167 - 5 - 60) s left at 10.1 s an epoch
    (167, 30, 39),   # a resumed run trains what is left, no more
    (70, 3, 3),      # not one epoch fits
])
def test_the_epochs_trained_are_those_the_measured_rates_fit(seconds_left, done, expected):
  # 929,589 train words at 92,958.9 words/s (10 s) and 73,760 valid at 737,600 (0.1 s).
  check = types.SimpleNamespace(
      ptb_data=ROOT, remaining=lambda: seconds_left,
      report={"benchmarks": {gpu_check.TRAIN_BENCHMARK: {
          "status": "ok", "per_second": 92_958.9, "eval_per_second": 737_600}}})
  record = {}
  fit = gpu_check._epochs_that_fit  # pylint: disable=protected-access
  assert fit(check, record, done, 39) == expected
  assert record["estimate"]["epoch_seconds"] == 10.1
