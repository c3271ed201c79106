"""Starting and watching the processes of sweeps and local clusters.

`run_all` runs the train.py commands of a sweep (sweeps.make_runs) N at a
time, each logging to <workdir>/train.log and leaving a DONE or FAILED marker
there; `failure_report` says which failed and how. `run_local_cluster` starts
N copies of a command wired to one jax.distributed coordinator on localhost.
"""

import dataclasses
import datetime
import json
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from typing import Callable, Optional, Sequence

from wavegan_jax.launching import sweeps
from wavegan_jax.launching.sweeps import LaunchError
from wavegan_jax.launching.sweeps import Run


@dataclasses.dataclass
class RunResult:
  """How a run ended, and train.py's exit code where it ran.

  status: 'done', 'skipped' (done before), 'failed' or 'not run'.
  """
  status: str
  returncode: Optional[int] = None
  seconds: float = 0.0


# --- Running. ---


def print_flushed(line: str):
  """Prints a progress line at once, also when stdout is a pipe or a file."""
  print(line, flush=True)


def exit_on_sigterm():
  """Makes SIGTERM raise SystemExit, so that `finally` stops the children.

  Call it in a launcher's main: a scheduler (or a test) that terminates the
  launcher then also terminates the runs it started.
  """
  def handler(signum, frame):
    del frame
    raise SystemExit(128 + signum)
  signal.signal(signal.SIGTERM, handler)


def _start(run: Run, env: Optional[dict]) -> tuple:
  os.makedirs(run.workdir, exist_ok=True)
  failed_marker = os.path.join(run.workdir, sweeps.FAILED_MARKER)
  if os.path.exists(failed_marker):
    os.remove(failed_marker)
  # The file and the process outlive this call: run_all closes and waits.
  # pylint: disable=consider-using-with
  log = open(os.path.join(run.workdir, sweeps.LOG_NAME), "a")
  started = datetime.datetime.now()
  log.write(f"=== sweep: {started.isoformat()} starting "
            f"{shlex.join(run.command)}\n")
  log.flush()
  process = subprocess.Popen(run.command, stdout=log,
                             stderr=subprocess.STDOUT, env=env)
  return process, log, started


def _finish(run: Run, returncode: int,
            started: datetime.datetime) -> RunResult:
  """Leaves the DONE or FAILED marker: a JSON record of the attempt."""
  finished = datetime.datetime.now()
  seconds = (finished - started).total_seconds()
  record = json.dumps({"command": run.command, "returncode": returncode,
                       "started": started.isoformat(),
                       "finished": finished.isoformat(),
                       "seconds": round(seconds, 1)})
  marker = sweeps.DONE_MARKER if returncode == 0 else sweeps.FAILED_MARKER
  with open(os.path.join(run.workdir, marker), "w") as f:
    f.write(record + "\n")
  return RunResult("done" if returncode == 0 else "failed", returncode,
                   seconds)


def terminate(process: subprocess.Popen, grace_seconds: float = 10.0):
  """Stops a child: SIGTERM, then SIGKILL after `grace_seconds`."""
  if process.poll() is None:
    process.terminate()
    try:
      process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def run_all(runs: Sequence[Run], parallel: int = 1,
            env: Optional[dict] = None,
            log: Callable[[str], None] = print_flushed,
            poll_seconds: float = 0.2) -> dict:
  """Runs the unfinished runs, `parallel` at a time; skips finished ones.

  Each run's output goes to <workdir>/train.log (appended, after a header
  line); it leaves <workdir>/DONE when train.py exits 0, else FAILED. A
  failed run does not stop the others.

  Args:
    runs: from make_runs.
    parallel: how many runs at once.
    env: the children's environment (default: this process's).
    log: where progress lines go.
    poll_seconds: how often to look at the children.

  Returns:
    {run name: RunResult}.
  """
  results, pending, running = {}, [], {}
  for run in runs:
    if sweeps.is_finished(run):
      log(f"skipped (finished before): {run.name}")
      results[run.name] = RunResult("skipped", 0)
    else:
      pending.append(run)
  try:
    while pending or running:
      while pending and len(running) < max(1, parallel):
        run = pending.pop(0)
        log(f"starting: {run.name}")
        running[run.name] = (run, *_start(run, env))
      time.sleep(poll_seconds)
      for name, (run, process, run_log, start) in list(running.items()):
        if process.poll() is None:
          continue
        run_log.close()
        del running[name]
        results[name] = _finish(run, process.returncode, start)
        log(f"{results[name].status} (exit code {process.returncode}, "
            f"{results[name].seconds:.0f} s): {name}")
  finally:
    for run, process, run_log, _ in running.values():
      terminate(process)
      run_log.close()
    for run in runs:
      results.setdefault(run.name, RunResult("not run"))
  return results


def log_tail(path: str, num_lines: int = 15) -> list:
  """The last lines of a text file (progress-bar carriage returns split)."""
  try:
    with open(path, errors="replace") as f:
      text = f.read()
  except OSError:
    return []
  lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
  return [line for line in lines if line.strip()][-num_lines:]


def failure_report(runs: Sequence[Run], results: dict) -> str:
  """Names each failed run with its exit code and the end of its log."""
  failed = [run for run in runs if results[run.name].status == "failed"]
  if not failed:
    return ""
  lines = [f"{len(failed)} of {len(runs)} runs failed:"]
  for run in failed:
    log_path = os.path.join(run.workdir, sweeps.LOG_NAME)
    lines.append(f"  {run.name}: exit code {results[run.name].returncode} "
                 f"(log: {log_path})")
    lines.extend(f"    | {line}" for line in log_tail(log_path))
  return "\n".join(lines)


# --- Local clusters. ---


def free_port() -> int:
  """A TCP port on localhost that nothing listens on right now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def cluster_commands(command: Sequence[str], num_processes: int,
                     port: int) -> list:
  """`command` for each process, with the jax.distributed flags appended."""
  if num_processes < 1:
    raise LaunchError(f"--num_processes must be at least 1, got "
                      f"{num_processes}")
  if not command:
    raise LaunchError("No command to run; put it after '--', e.g. "
                      "-- python launch/train.py --config=... --workdir=...")
  return [[*command, f"--coordinator_address=127.0.0.1:{port}",
           f"--num_processes={num_processes}", f"--process_id={index}"]
          for index in range(num_processes)]


def run_local_cluster(command: Sequence[str], num_processes: int,
                      port: Optional[int] = None,
                      log_dir: Optional[str] = None,
                      log: Callable[[str], None] = print_flushed,
                      poll_seconds: float = 0.2) -> int:
  """Runs `command` as N processes of one jax.distributed job on localhost.

  Process 0 writes to this process's stdout/stderr; process i > 0 to
  <log_dir>/process_<i>.log. When a process fails the others are stopped.

  Args:
    command: the program and its arguments (e.g. python launch/train.py ...).
    num_processes: how many copies.
    port: the coordinator's port (default: a free one).
    log_dir: where the logs of processes 1.. go (default: a new temp dir).
    log: where progress lines and the failure report go.
    poll_seconds: how often to look at the children.

  Returns:
    0 if every process exited 0, else the exit code of the first failure
    (1 if that was killed by a signal).
  """
  port = port or free_port()
  commands = cluster_commands(command, num_processes, port)
  if log_dir is None:
    log_dir = tempfile.mkdtemp(prefix="local_cluster_")
  os.makedirs(log_dir, exist_ok=True)
  log(f"local cluster: {num_processes} processes, coordinator "
      f"127.0.0.1:{port}; logs of processes 1.. in {log_dir}")
  processes, files = [], []
  try:
    # pylint: disable=consider-using-with
    for index, process_command in enumerate(commands):
      if index == 0:
        processes.append(subprocess.Popen(process_command))
        continue
      files.append(open(os.path.join(log_dir, f"process_{index}.log"), "w"))
      processes.append(subprocess.Popen(
          process_command, stdout=files[-1], stderr=subprocess.STDOUT))
    while True:
      codes = [process.poll() for process in processes]
      failed = [index for index, code in enumerate(codes) if code]
      if failed or all(code == 0 for code in codes):
        break
      time.sleep(poll_seconds)
  finally:
    for process in processes:
      terminate(process)
    for file in files:
      file.close()
  if not failed:
    return 0
  index = failed[0]
  code = processes[index].returncode
  report = [f"local cluster: process {index} failed with exit code {code}; "
            "stopped the others."]
  if index > 0:
    log_path = os.path.join(log_dir, f"process_{index}.log")
    report.append(f"Last lines of {log_path}:")
    report.extend(f"  | {line}" for line in log_tail(log_path))
  log("\n".join(report))
  return code if code > 0 else 1
