r"""Runs a grid of train.py runs: `launch/sweep.py --config=... --sweep=...`.

Each run gets its own workdir, named after its overrides, under
--workdir_root; N run at a time (--parallel), each logging to
<workdir>/train.log. A rerun skips the runs that finished (DONE marker) and
retries the others. At the end every run's final metrics go to
<workdir_root>/summary.csv and summary.md, and failed runs are reported (the
exit status is then 1).

Examples:
  python launch/sweep.py --config=experiments/av_digits.py:quick \
      --sweep='seed=0,1;generator.train.learning_rate=1e-4,3e-4' \
      --workdir_root=workdirs/lr_sweep --parallel=2
  # Paired values instead of the product; fixed overrides after '--':
  python launch/sweep.py --config=experiments/wavegan.py --zip \
      --sweep='seed=0,1,2;train.learning_rate=1e-4,2e-4,3e-4' \
      --workdir_root=workdirs/wg -- --config.train.num_steps=1000
  # Only print the commands (one per line), e.g. for a cluster scheduler:
  python launch/sweep.py ... --dry_run
"""

import json
import os
import shlex
import sys

from absl import app
from absl import flags

from wavegan_jax import errors
from wavegan_jax.launching import processes
from wavegan_jax.launching import sweep_summary
from wavegan_jax.launching import sweeps

_CONFIG = flags.DEFINE_string(
    "config", None, "Experiment config file, optionally with ':VARIANT'.",
    required=True)
_SWEEP = flags.DEFINE_string(
    "sweep", None, "Axes 'KEY=V1,V2;KEY2=V3,V4' over config keys.",
    required=True)
_ZIP = flags.DEFINE_bool(
    "zip", False, "Pair the axes' values position by position instead of "
    "taking every combination.")
_WORKDIR_ROOT = flags.DEFINE_string(
    "workdir_root", None, "Folder of the runs' workdirs and the summary.",
    required=True)
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs at a time.")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Print the train.py commands, one per line; run none.")
_SORT_BY = flags.DEFINE_string(
    "sort_by", None, "Metric column that orders summary.md (e.g. "
    "generator/stft; '-' first: descending). Default: the first eval metric, "
    "else the last stage's loss.")
_PYTHON = flags.DEFINE_string("python", sys.executable,
                              "The interpreter in the commands.")


errors.define_debug_flag()


def _train_script() -> str:
  """launch/train.py, relative to the working directory when inside it."""
  path = str(sweeps.TRAIN_SCRIPT)
  relative = os.path.relpath(path)
  return path if relative.startswith("..") else relative


def main(argv):
  extra_args = argv[1:]
  processes.exit_on_sigterm()
  try:
    grid = sweeps.expand_grid(sweeps.parse_sweep(_SWEEP.value),
                              _ZIP.value)
    runs = sweeps.make_runs(_CONFIG.value, grid, _WORKDIR_ROOT.value,
                            extra_args, python=_PYTHON.value,
                            train_script=_train_script())
  except sweeps.LaunchError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)
  if _DRY_RUN.value:
    for run in runs:
      print(shlex.join(run.command))
    return

  os.makedirs(_WORKDIR_ROOT.value, exist_ok=True)
  with open(os.path.join(_WORKDIR_ROOT.value, "sweep.json"), "w") as f:
    json.dump({"config": _CONFIG.value, "sweep": _SWEEP.value,
               "zip": _ZIP.value, "extra_args": extra_args,
               "runs": {run.name: run.command for run in runs}}, f, indent=1)
  print(f"sweep: {len(runs)} runs under {_WORKDIR_ROOT.value}, "
        f"{_PARALLEL.value} at a time")
  results = processes.run_all(runs, _PARALLEL.value)

  # pylint: disable-next=g-import-not-at-top
  from wavegan_jax.training import trainer
  stages = trainer.experiment_stages(sweeps.load_config(_CONFIG.value))
  summary = sweep_summary.write_summary(
      _WORKDIR_ROOT.value, runs, results, stages, _SORT_BY.value)
  with open(summary["markdown"]) as f:
    print(f.read())
  print(f"summary: {summary['csv']}, {summary['markdown']}")
  report = processes.failure_report(runs, results)
  if report:
    print(report, file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(errors.cli_main(main))
