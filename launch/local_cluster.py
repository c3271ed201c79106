r"""Runs N processes of one multi-process JAX job on this machine.

`launch/local_cluster.py --num_processes=N [--port=P] -- <command...>` starts
N copies of the command, each with --coordinator_address=127.0.0.1:<port>
--num_processes=N --process_id=i appended (the flags of launch/train.py), so
multi-host code can be tried on one machine. Process 0's output streams here;
the others' go to <logs_dir>/process_<i>.log. If a process fails the others
are stopped and the exit status is non-zero, naming the process.

Example (two processes, each with the CPU as its one device):
  python launch/local_cluster.py --num_processes=2 -- \
      python launch/train.py --config=experiments/av_digits.py:tiny \
      --workdir=workdirs/tiny_2proc
"""

import sys

from absl import app
from absl import flags

from wavegan_jax import errors
from wavegan_jax.launching import processes
from wavegan_jax.launching import sweeps

_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 2,
                                      "How many processes to start.")
_PORT = flags.DEFINE_integer(
    "port", None, "Coordinator port on 127.0.0.1 (default: a free one).")
# Not --log_dir: absl.logging defines that one.
_LOGS_DIR = flags.DEFINE_string(
    "logs_dir", None, "Where the logs of processes 1.. go (default: a new "
    "temporary folder).")


errors.define_debug_flag()


def main(argv):
  command = argv[1:]
  processes.exit_on_sigterm()
  if command and command[0].endswith(".py"):
    command = [sys.executable, *command]
  try:
    code = processes.run_local_cluster(
        command, _NUM_PROCESSES.value, port=_PORT.value,
        log_dir=_LOGS_DIR.value)
  except sweeps.LaunchError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
  sys.exit(code)


if __name__ == "__main__":
  app.run(errors.cli_main(main))
