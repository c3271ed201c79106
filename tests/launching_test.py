"""Unit tests of the sweep and local-cluster library (no training here)."""

import csv
import json
import os
import pathlib
import sys
import time

from absl import flags
import pytest

from tests.conftest import load_launch_script
from wavegan_jax.launching import processes
from wavegan_jax.launching import sweep_summary
from wavegan_jax.launching import sweeps

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = "experiments/av_digits.py:tiny"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
  monkeypatch.chdir(REPO)


def test_parse_sweep_splits_axes_and_values():
  assert sweeps.parse_sweep(
      "seed=0,1; train.learning_rate=1e-4,2e-4;"
      "visual.model.conv_features=(4,8),(8,16)") == [
          ("seed", ["0", "1"]),
          ("train.learning_rate", ["1e-4", "2e-4"]),
          ("visual.model.conv_features", ["(4,8)", "(8,16)"])]
  assert sweeps.parse_sweep("config.seed=3") == [("seed", ["3"])]


@pytest.mark.parametrize("spec, message", [
    ("", "Empty sweep ''"),
    ("seed", "Sweep axis 'seed' is not KEY=VALUE[,VALUE...]"),
    ("seed=0,,1", "Sweep axis 'seed=0,,1' has an empty value"),
    ("seed=0;seed=1", "Sweep key 'seed' is given twice"),
])
def test_parse_sweep_errors(spec, message):
  with pytest.raises(sweeps.LaunchError, match=message.replace(
      "[", r"\[").replace("]", r"\]").replace(".", r"\.")):
    sweeps.parse_sweep(spec)


def test_expand_grid_product_and_zip():
  axes = [("a", ["1", "2"]), ("b", ["x", "y", "z"])]
  product = sweeps.expand_grid(axes)
  assert len(product) == 6
  assert product[:4] == [{"a": "1", "b": "x"}, {"a": "1", "b": "y"},
                         {"a": "1", "b": "z"}, {"a": "2", "b": "x"}]
  assert sweeps.expand_grid([("a", ["1", "2"]), ("b", ["x", "y"])],
                            zip_axes=True) == [{"a": "1", "b": "x"},
                                               {"a": "2", "b": "y"}]
  with pytest.raises(sweeps.LaunchError) as error:
    sweeps.expand_grid(axes, zip_axes=True)
  assert str(error.value) == ("--zip needs the same number of values on "
                              "every axis; got a: 2, b: 3")


def test_check_overrides_parses_and_sets_values():
  config = sweeps.load_config(TINY)
  changed = sweeps.check_overrides(config, {
      "seed": "3", "train.learning_rate": "2e-4", "strategy": "joint",
      "visual.model.conv_features": "(2, 4)"})
  assert changed.seed == 3
  assert changed.train.learning_rate == pytest.approx(2e-4)
  assert changed.strategy == "joint"
  assert tuple(changed.visual.model.conv_features) == (2, 4)
  assert config.seed == 0  # The original is untouched.


def test_check_overrides_names_an_unknown_key():
  config = sweeps.load_config(TINY)
  with pytest.raises(sweeps.LaunchError) as error:
    sweeps.check_overrides(config, {"train.learnin_rate": "1"}, TINY)
  assert str(error.value).startswith(
      "Unknown config key 'train.learnin_rate' in "
      "experiments/av_digits.py:tiny: train has no field 'learnin_rate' "
      "(its fields: b1, b2, batch_size,")
  with pytest.raises(sweeps.LaunchError,
                     match="the top level has no field 'sed'"):
    sweeps.check_overrides(config, {"sed": "1"})
  with pytest.raises(sweeps.LaunchError,
                     match="'seed' has no field 'x'|seed has no field 'x'"):
    sweeps.check_overrides(config, {"seed.x": "1"})


@pytest.mark.parametrize("script, args", [
    ("train", ["--workdir={tmp_path}"]), ("summarize", [])])
def test_scripts_name_an_unknown_override_in_one_line(script, args,
                                                      tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  result = subprocess.run(
      [sys.executable, f"launch/{script}.py", f"--config={TINY}",
       *[arg.format(tmp_path=tmp_path) for arg in args],
       "--config.train.learnin_rate=1"],
      capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith(
      "error: Unknown config key 'train.learnin_rate' in "
      "experiments/av_digits.py:tiny: train has no field 'learnin_rate'")
  assert "Traceback" not in result.stderr
  assert not any(tmp_path.iterdir())  # Nothing started.


def test_check_overrides_rejects_bad_values_and_blocks():
  config = sweeps.load_config(TINY)
  with pytest.raises(sweeps.LaunchError,
                     match="Bad value 'abc' for config key 'seed' \\(a int\\)"):
    sweeps.check_overrides(config, {"seed": "abc"})
  with pytest.raises(sweeps.LaunchError,
                     match="Config key 'train' is a block, not a value"):
    sweeps.check_overrides(config, {"train": "1"})


def test_load_config_errors():
  with pytest.raises(sweeps.LaunchError,
                     match="Config file experiments/nope.py not found"):
    sweeps.load_config("experiments/nope.py:tiny")
  with pytest.raises(sweeps.LaunchError,
                     match="Unknown av_digits variant 'huge'"):
    sweeps.load_config("experiments/av_digits.py:huge")


def test_make_runs_names_workdirs_and_builds_commands(tmp_path):
  grid = sweeps.expand_grid(sweeps.parse_sweep(
      "seed=0,1;train.learning_rate=1e-4,2e-4"))
  runs = sweeps.make_runs(TINY, grid, str(tmp_path),
                          ["--stages=acoustic",
                              "--config.acoustic.train.num_steps=2"],
                             python="python", train_script="launch/train.py")
  assert [run.name for run in runs] == [
      "seed=0,train.learning_rate=0.0001", "seed=0,train.learning_rate=0.0002",
      "seed=1,train.learning_rate=0.0001", "seed=1,train.learning_rate=0.0002"]
  assert runs[1].command == [
      "python", "launch/train.py", f"--config={TINY}",
      f"--workdir={tmp_path}/seed=0,train.learning_rate=0.0002",
      "--config.seed=0", "--config.train.learning_rate=2e-4",
      "--stages=acoustic", "--config.acoustic.train.num_steps=2"]
  assert not list(tmp_path.iterdir())  # Nothing is created yet.


def test_make_runs_errors(tmp_path):
  with pytest.raises(sweeps.LaunchError,
                     match="Unknown config key 'acoustic.train.num_stepz'"):
    sweeps.make_runs(TINY, [{"seed": "0"}], str(tmp_path),
                     ["--config.acoustic.train.num_stepz=2"])
  with pytest.raises(sweeps.LaunchError,
                     match=r"Key\(s\) \['seed'\] are both swept and set"):
    sweeps.make_runs(TINY, [{"seed": "0"}], str(tmp_path),
                     ["--config.seed=2"])
  with pytest.raises(sweeps.LaunchError, match="'--workdir=x': the sweep "
                     "sets --config and --workdir of each run itself"):
    sweeps.make_runs(TINY, [{"seed": "0"}], str(tmp_path), ["--workdir=x"])
  with pytest.raises(sweeps.LaunchError, match="would share the workdir "
                     "'strategy=a_b'"):
    sweeps.make_runs(TINY, [{"strategy": "a/b"}, {"strategy": "a b"}],
                     str(tmp_path))


def test_run_name_is_filesystem_safe_and_bounded():
  config = sweeps.load_config(TINY)
  assert sweeps.run_name({"strategy": "x/../y z"}, config) == (
      "strategy=x_.._y_z")
  long_name = sweeps.run_name({"strategy": "a" * 300}, config)
  assert len(long_name) == 200


def _fake_run(tmp_path, name, code, sleep=0.0):
  script = f"import time, sys; time.sleep({sleep}); print('hello {name}'); " \
           f"sys.exit({code})"
  return sweeps.Run(name, {"seed": name}, str(tmp_path / name),
                    [sys.executable, "-c", script])


def test_run_all_runs_in_parallel_marks_and_skips(tmp_path):
  runs = [_fake_run(tmp_path, "a", 0, 1.0), _fake_run(tmp_path, "b", 3, 1.0),
          _fake_run(tmp_path, "c", 0)]
  lines = []
  start = time.monotonic()
  results = processes.run_all(runs, parallel=2, log=lines.append)
  assert [results[n].status for n in "abc"] == ["done", "failed", "done"]
  assert results["b"].returncode == 3
  assert time.monotonic() - start < 2 * 1.0 + 5  # a and b overlapped.
  assert (tmp_path / "a" / "DONE").exists()
  assert json.loads((tmp_path / "b" / "FAILED").read_text())["returncode"] == 3
  assert "hello b" in (tmp_path / "b" / "train.log").read_text()
  report = processes.failure_report(runs, results)
  assert report.splitlines()[:3] == [
      "1 of 3 runs failed:",
      f"  b: exit code 3 (log: {tmp_path}/b/train.log)",
      "    | === sweep: " + (tmp_path / "b" / "train.log").read_text()
      .splitlines()[0][len("=== sweep: "):]]
  assert report.splitlines()[-1] == "    | hello b"

  log_a = (tmp_path / "a" / "train.log").read_text()
  lines.clear()
  results = processes.run_all(runs, parallel=2, log=lines.append)
  assert "skipped (finished before): a" in lines
  assert "skipped (finished before): c" in lines
  assert results["a"].status == "skipped" and results["b"].status == "failed"
  assert (tmp_path / "a" / "train.log").read_text() == log_a
  assert (tmp_path / "b" / "train.log").read_text().count("=== sweep:") == 2


def test_summary_sorts_and_keeps_failed_runs(tmp_path):
  def make(name, metrics=None, eval_metrics=None):
    run = sweeps.Run(name, {"seed": name[-1]}, str(tmp_path / name), [])
    for stage, values in (metrics or {}).items():
      os.makedirs(tmp_path / name / stage)
      (tmp_path / name / stage / "final_metrics.json").write_text(
          json.dumps(values))
    if eval_metrics:
      os.makedirs(tmp_path / name / "eval")
      (tmp_path / name / "eval" / "metrics.json").write_text(
          json.dumps(eval_metrics))
    return run

  runs = [make("s0", {"visual": {"loss": 0.5}, "acoustic": {"loss": 0.2}}),
          make("s1", {"acoustic": {"loss": 0.1}, "visual": {"loss": 0.3}}),
          make("s2")]
  results = {"s0": processes.RunResult("done", 0),
             "s1": processes.RunResult("skipped", 0),
             "s2": processes.RunResult("failed", 1)}
  summary = sweep_summary.write_summary(
      str(tmp_path), runs, results, stage_order=("acoustic", "visual"))
  assert summary["sort_by"] == "visual/loss"  # The last stage's loss.
  with open(summary["csv"]) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["run", "status", "exit_code", "seed",
                           "acoustic/loss", "visual/loss"]
  assert [(r["run"], r["status"], r["visual/loss"]) for r in rows] == [
      ("s1", "skipped", "0.3"), ("s0", "done", "0.5"), ("s2", "failed", "")]
  markdown = pathlib.Path(summary["markdown"]).read_text().splitlines()
  assert markdown[0] == "Sorted by visual/loss."
  assert markdown[2] == "| run | status | seed | visual/loss | acoustic/loss |"
  assert markdown[-1] == "| s2 | failed (exit 1) | 2 |  |  |"

  # Eval metrics come first by default; accuracies sort descending.
  runs[0] = make("e0", {"acoustic": {"loss": 1.0}},
                 {"digit_accuracy": 0.4, "fad": {"real": 2.0}})
  runs[1] = make("e1", {"acoustic": {"loss": 2.0}}, {"digit_accuracy": 0.9})
  results.update(e0=results["s0"], e1=results["s1"])
  summary = sweep_summary.write_summary(str(tmp_path), runs, results)
  assert summary["sort_by"] == "eval/digit_accuracy"
  assert [row["run"] for row in summary["rows"]] == ["e1", "e0", "s2"]
  assert summary["rows"][1]["eval/fad/real"] == 2.0
  summary = sweep_summary.write_summary(str(tmp_path), runs, results,
                                        sort_by="+acoustic/loss")
  assert [row["run"] for row in summary["rows"]] == ["e0", "e1", "s2"]


def test_cluster_commands_append_the_distributed_flags():
  assert processes.cluster_commands(["prog", "--x=1"], 2, 1234) == [
      ["prog", "--x=1", "--coordinator_address=127.0.0.1:1234",
       "--num_processes=2", "--process_id=0"],
      ["prog", "--x=1", "--coordinator_address=127.0.0.1:1234",
       "--num_processes=2", "--process_id=1"]]
  with pytest.raises(sweeps.LaunchError, match="No command to run"):
    processes.cluster_commands([], 2, 1234)
  with pytest.raises(sweeps.LaunchError, match="at least 1, got 0"):
    processes.cluster_commands(["prog"], 0, 1234)
  assert 0 < processes.free_port() < 65536


_CLUSTER_SCRIPT = """
import sys, time
process_id = int(sys.argv[-1].split("=")[1])
print("process", process_id, "of", sys.argv[-2].split("=")[1], flush=True)
if process_id == {failing}:
  sys.exit(5)
time.sleep({sleep})
"""


def test_local_cluster_success_and_failure(tmp_path, capfd):
  lines = []
  command = [sys.executable, "-c", _CLUSTER_SCRIPT.format(failing=-1,
                                                          sleep=0)]
  code = processes.run_local_cluster(
      command, 3, port=4321, log_dir=str(tmp_path), log=lines.append)
  assert code == 0
  assert "process 0 of 3" in capfd.readouterr().out
  assert (tmp_path / "process_2.log").read_text() == "process 2 of 3\n"
  assert lines == [f"local cluster: 3 processes, coordinator 127.0.0.1:4321; "
                   f"logs of processes 1.. in {tmp_path}"]

  # Process 1 fails at once: process 0 (sleeping a minute) is stopped.
  lines.clear()
  command = [sys.executable, "-c", _CLUSTER_SCRIPT.format(failing=1,
                                                          sleep=60)]
  start = time.monotonic()
  code = processes.run_local_cluster(
      command, 2, log_dir=str(tmp_path), log=lines.append)
  assert time.monotonic() - start < 30
  assert code == 5
  assert lines[-1].splitlines() == [
      "local cluster: process 1 failed with exit code 5; stopped the others.",
      f"Last lines of {tmp_path}/process_1.log:", "  | process 1 of 2"]


def test_launch_scripts_sharing_flag_names_load_in_one_process():
  # benchmark.py and probe_encoders.py both define --manual_dir, --data_dir
  # and --batch_size; an xdist worker may run tests of both.
  benchmark = load_launch_script("benchmark")
  assert "sections" in flags.FLAGS
  load_launch_script("probe_encoders")
  assert "sections" not in flags.FLAGS and "batch_size" in flags.FLAGS
  assert flags.FLAGS["batch_size"].default == 100  # probe_encoders' own.
  assert load_launch_script("benchmark") is not benchmark
  assert flags.FLAGS["batch_size"].default == 16
