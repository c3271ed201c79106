"""launch/sweep.py end to end: a 2x2 sweep of av_digits:tiny (acoustic only).

One combination is invalid (the conv front end's strides multiply to 256, so
hop_length=128 fails at init): that run fails, the other three are
summarised, and a rerun skips them.
"""

import csv
import datetime
import json
import os
import pathlib
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "experiments/av_digits.py:tiny"
SWEEP = "acoustic.model.frontend=logmel,conv;acoustic.model.hop_length=256,128"
NAMES = [f"acoustic.model.frontend={frontend},acoustic.model.hop_length={hop}"
         for frontend in ("logmel", "conv") for hop in (256, 128)]
FAILING = NAMES[3]


def sweep_args(root, *flags, sweep=SWEEP, extra=()):
  return [sys.executable, "launch/sweep.py", f"--config={CONFIG}",
          f"--sweep={sweep}", f"--workdir_root={root}", *flags, "--",
          "--stages=acoustic", "--config.acoustic.train.num_steps=2", *extra]


def start(args):
  return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True)


def finish(process, timeout=600):
  try:
    stdout, stderr = process.communicate(timeout=timeout)
  finally:
    if process.poll() is None:
      os.killpg(process.pid, 9)
      process.wait()
  return process.returncode, stdout, stderr


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory, av_digits_data_dir, manual_dir):
  """The sweep, run once; the dry run and a bad key alongside it."""
  root = tmp_path_factory.mktemp("sweep") / "root"
  extra = (f"--data_dir={av_digits_data_dir}", f"--manual_dir={manual_dir}")
  sweep = start(sweep_args(root, "--parallel=2", extra=extra))
  dry_root = tmp_path_factory.mktemp("dry") / "root"
  dry_run = start(sweep_args(dry_root, "--dry_run", extra=extra))
  bad_root = tmp_path_factory.mktemp("bad") / "root"
  bad_key = start(sweep_args(
      bad_root, sweep="seed=0,1;acoustic.model.hop_lenth=256,128"))
  return {"root": root, "extra": extra, "sweep": finish(sweep),
          "dry_run": (dry_root, finish(dry_run)),
          "bad_key": (bad_root, finish(bad_key))}


def test_dry_run_prints_four_commands(first_sweep):
  root, (code, stdout, _) = first_sweep["dry_run"]
  assert code == 0
  commands = [shlex.split(line) for line in stdout.splitlines()]
  assert len(commands) == 4
  for name, command in zip(NAMES, commands):
    frontend, hop = (part.split("=")[1] for part in name.split(","))
    assert command == [
        sys.executable, "launch/train.py", f"--config={CONFIG}",
        f"--workdir={root}/{name}",
        f"--config.acoustic.model.frontend={frontend}",
        f"--config.acoustic.model.hop_length={hop}", "--stages=acoustic",
        "--config.acoustic.train.num_steps=2", *first_sweep["extra"]]
  assert not root.exists()  # Nothing ran.


def test_unknown_key_fails_before_anything_runs(first_sweep):
  root, (code, stdout, stderr) = first_sweep["bad_key"]
  assert code == 2
  assert stdout == ""
  assert stderr.splitlines()[-1] == (
      f"error: Unknown config key 'acoustic.model.hop_lenth' in {CONFIG}: "
      "acoustic.model has no field 'hop_lenth' (its fields: "
      "context_features, frontend, hop_length, lstm_features, n_fft, "
      "num_lstm_layers, num_mels, style_features)")
  assert not root.exists()


def test_sweep_reports_the_failed_run_and_summarises_the_others(first_sweep):
  root = first_sweep["root"]
  code, stdout, stderr = first_sweep["sweep"]
  assert code == 1, stdout + stderr
  assert sorted(p.name for p in root.iterdir()) == sorted(
      NAMES + ["summary.csv", "summary.md", "sweep.json"])
  report = stderr[stderr.index("1 of 4 runs failed:"):].splitlines()
  assert report[1] == (f"  {FAILING}: exit code 1 (log: "
                       f"{root}/{FAILING}/train.log)")
  assert report[-1].startswith("    | ")
  assert ("the conv strides (4, 4, 4, 4) multiply to 256, not "
          "hop_length=128") in "\n".join(report)
  assert (root / FAILING / "FAILED").exists()

  # The others are done; two ran at a time.
  intervals = []
  for name in NAMES:
    marker = "FAILED" if name == FAILING else "DONE"
    record = json.loads((root / name / marker).read_text())
    intervals.append(tuple(datetime.datetime.fromisoformat(record[key])
                           for key in ("started", "finished")))
  starts = sorted(s for s, _ in intervals)
  running_at = [sum(s <= t < e for s, e in intervals) for t in starts]
  assert max(running_at) == 2

  with open(root / "summary.csv") as f:
    rows = {row["run"]: row for row in csv.DictReader(f)}
  assert set(rows) == set(NAMES)
  assert rows[FAILING]["status"] == "failed"
  assert rows[FAILING]["exit_code"] == "1"
  assert rows[FAILING]["acoustic/loss"] == ""
  losses = {}
  for name in NAMES[:3]:
    final = json.loads((root / name / "acoustic" /
                        "final_metrics.json").read_text())
    assert rows[name]["status"] == "done"
    assert float(rows[name]["acoustic/loss"]) == pytest.approx(final["loss"])
    assert int(rows[name]["acoustic/step"]) == 2
    losses[name] = final["loss"]
  markdown = (root / "summary.md").read_text().splitlines()
  assert markdown[0] == "Sorted by acoustic/loss."
  order = [line.split(" | ")[0][2:] for line in markdown[4:]]
  assert order == sorted(losses, key=losses.get) + [FAILING]
  assert f"| {FAILING} | failed (exit 1) | conv | 128 |" in markdown[-1]


def test_rerun_skips_finished_runs(first_sweep):
  root = first_sweep["root"]
  logs = {name: (root / name / "train.log").read_bytes() for name in NAMES}
  mtimes = {name: os.stat(root / name / "train.log").st_mtime_ns
            for name in NAMES}
  code, stdout, stderr = finish(start(sweep_args(
      root, "--parallel=2", extra=first_sweep["extra"])))
  assert code == 1, stdout + stderr
  for name in NAMES[:3]:
    assert f"skipped (finished before): {name}" in stdout.splitlines()
    assert (root / name / "train.log").read_bytes() == logs[name]
    assert os.stat(root / name / "train.log").st_mtime_ns == mtimes[name]
  assert f"starting: {FAILING}" in stdout.splitlines()
  failed_log = (root / FAILING / "train.log").read_text()
  assert failed_log.startswith(logs[FAILING].decode())
  assert failed_log.count("=== sweep:") == 2
  with open(root / "summary.csv") as f:
    statuses = {row["run"]: row["status"] for row in csv.DictReader(f)}
  assert statuses == {**{name: "skipped" for name in NAMES[:3]},
                      FAILING: "failed"}
