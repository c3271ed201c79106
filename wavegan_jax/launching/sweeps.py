"""Sweeps as data: grids of config overrides, checked, named and commanded.

A sweep (launch/sweep.py) is a grid of config overrides, e.g.
'seed=0,1;train.learning_rate=1e-4,2e-4'. `parse_sweep` and `expand_grid`
turn it into runs, `check_overrides` checks every key and value against the
loaded config before anything starts, and `make_runs` names a workdir after
each run's overrides and builds its `launch/train.py` command. A run is
finished when its workdir holds a DONE marker (train.py exited 0).

The processes are started by processes.py (sweeps and local clusters);
sweep_summary.py aggregates the runs' metrics.
"""

import ast
import copy
import dataclasses
import hashlib
import importlib.util
import itertools
import os
import pathlib
import re
import sys
from typing import Sequence

import ml_collections

from wavegan_jax import errors

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO_ROOT / "launch" / "train.py"
LOG_NAME = "train.log"
DONE_MARKER = "DONE"
FAILED_MARKER = "FAILED"
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._=,+-]")
_MAX_NAME_LEN = 200


LaunchError = errors.LaunchError


@dataclasses.dataclass
class Run:
  """One run of a sweep: its overrides (key -> text), workdir and command."""
  name: str
  overrides: dict
  workdir: str
  command: list


# --- Grid. ---


def _split_values(text: str) -> list:
  """Splits 'a,(1,2),b' at the commas that are outside brackets and quotes."""
  values, depth, quote, start = [], 0, None, 0
  for i, char in enumerate(text):
    if quote:
      quote = None if char == quote else quote
    elif char in "'\"":
      quote = char
    elif char in "([{":
      depth += 1
    elif char in ")]}":
      depth -= 1
    elif char == "," and depth == 0:
      values.append(text[start:i].strip())
      start = i + 1
  values.append(text[start:].strip())
  return values


def parse_sweep(spec: str) -> list:
  """Parses 'k1=v1,v2;k2=v3' into [(k1, [v1, v2]), (k2, [v3])].

  Values are split at commas outside brackets, so tuple values can be swept:
  'visual.model.conv_features=(4,8),(8,16)'.

  Args:
    spec: ';'-separated axes, each 'KEY=VALUE[,VALUE...]'.

  Returns:
    The axes in the order given, each (key, list of value texts).

  Raises:
    LaunchError: for an empty spec, an axis without '=', an empty value or a
      key given twice.
  """
  axes, seen = [], set()
  for part in (spec or "").split(";"):
    part = part.strip()
    if not part:
      continue
    key, sep, values_text = part.partition("=")
    key = key.strip()
    if key.startswith("config."):
      key = key[len("config."):]
    if not sep or not key:
      raise LaunchError(f"Sweep axis {part!r} is not KEY=VALUE[,VALUE...]")
    values = _split_values(values_text)
    if any(not value for value in values):
      raise LaunchError(f"Sweep axis {part!r} has an empty value")
    if key in seen:
      raise LaunchError(f"Sweep key {key!r} is given twice")
    seen.add(key)
    axes.append((key, values))
  if not axes:
    raise LaunchError(f"Empty sweep {spec!r}; expected e.g. "
                      "'seed=0,1;train.learning_rate=1e-4,2e-4'")
  return axes


def expand_grid(axes: Sequence, zip_axes: bool = False) -> list:
  """The runs of a grid: every combination, or the i-th values together.

  Args:
    axes: [(key, [value, ...]), ...] as from parse_sweep.
    zip_axes: pair the values position by position (all lists must have the
      same length) instead of taking the Cartesian product.

  Returns:
    A list of {key: value text} dicts, keys in axis order; for the product,
    the first axis varies slowest.
  """
  keys = [key for key, _ in axes]
  value_lists = [values for _, values in axes]
  if zip_axes:
    lengths = {len(values) for values in value_lists}
    if len(lengths) > 1:
      counts = ", ".join(f"{key}: {len(values)}" for key, values in axes)
      raise LaunchError(
          f"--zip needs the same number of values on every axis; got {counts}")
    combos = zip(*value_lists)
  else:
    combos = itertools.product(*value_lists)
  return [dict(zip(keys, combo)) for combo in combos]


# --- Config loading and override checks. ---


def load_config(config_spec: str) -> ml_collections.ConfigDict:
  """Loads 'path/to/config.py[:ARG]' as config_flags does: get_config(ARG)."""
  path, _, arg = config_spec.partition(":")
  if not os.path.isfile(path):
    raise LaunchError(f"Config file {path} not found (from --config="
                      f"{config_spec})")
  module_spec = importlib.util.spec_from_file_location(
      "sweep_config_" + hashlib.md5(path.encode()).hexdigest()[:8], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise LaunchError(f"Config file {path} has no get_config()")
  try:
    return module.get_config(arg) if arg else module.get_config()
  except ValueError as error:
    raise LaunchError(f"--config={config_spec}: {error}") from error


def _parse_value(text: str, field_type: type, key: str):
  """The value that `--config.KEY=text` sets on a field of `field_type`."""
  try:
    if field_type is bool:
      lowered = text.lower()
      if lowered not in ("true", "false", "1", "0"):
        raise ValueError("expected true or false")
      return lowered in ("true", "1")
    if field_type is int:
      return int(text)
    if field_type is float:
      return float(text)
    if field_type in (tuple, list):
      value = ast.literal_eval(text)
      if not isinstance(value, (tuple, list)):
        raise ValueError(f"expected a {field_type.__name__}")
      return field_type(value)
    return text
  except (ValueError, SyntaxError) as error:
    raise LaunchError(f"Bad value {text!r} for config key {key!r} (a "
                      f"{field_type.__name__}): {error}") from error


def check_overrides(config: ml_collections.ConfigDict, overrides: dict,
                    config_spec: str = "the config"):
  """Applies {key: value text} to a copy of `config`, as train.py would.

  Args:
    config: the loaded (locked) config.
    overrides: dotted config keys -> value texts.
    config_spec: the --config value, for error messages.

  Returns:
    The overridden copy.

  Raises:
    LaunchError: naming the first key that the config lacks, or a value that
      does not fit its field.
  """
  config = copy.deepcopy(config)
  for key, text in overrides.items():
    parent, path = config, key.split(".")
    for depth, part in enumerate(path):
      known = (isinstance(parent, ml_collections.ConfigDict) and
               part in parent)
      if not known:
        where = ".".join(path[:depth]) or "the top level"
        fields = (", ".join(sorted(parent.keys()))
                  if isinstance(parent, ml_collections.ConfigDict) else "none")
        raise LaunchError(
            f"Unknown config key {key!r} in {config_spec}: {where} has no "
            f"field {part!r} (its fields: {fields})")
      if depth < len(path) - 1:
        parent = parent[part]
    leaf = path[-1]
    if isinstance(parent[leaf], ml_collections.ConfigDict):
      raise LaunchError(f"Config key {key!r} is a block, not a value; sweep "
                        f"its fields ({key}.FIELD)")
    value = _parse_value(text, parent.get_type(leaf), key)
    try:
      parent[leaf] = value
    except (TypeError, ValueError) as error:
      raise LaunchError(f"Bad value {text!r} for config key {key!r}: "
                        f"{error}") from error
  return config


def config_flag_overrides(args: Sequence[str]) -> dict:
  """The {key: value} of the `--config.KEY=VALUE` flags among `args`."""
  overrides = {}
  for arg in args:
    if arg.startswith("--config."):
      key, sep, value = arg[len("--config."):].partition("=")
      if not sep:
        raise LaunchError(f"Write config overrides as --config.KEY=VALUE "
                          f"(one argument), got {arg!r}")
      overrides[key] = value
  return overrides


def config_spec_of(args: Sequence[str]) -> str | None:
  """The value of `--config=SPEC` (or `--config SPEC`) among `args`."""
  for index, arg in enumerate(args):
    if arg.startswith("--config="):
      return arg[len("--config="):]
    if arg == "--config" and index + 1 < len(args):
      return args[index + 1]
  return None


def parse_flags(argv: Sequence[str]) -> list:
  """absl `flags_parser` for scripts with a config flag: bad keys in one line.

  absl reports a bad flag value itself, but a `--config.KEY=...` naming a
  field the config lacks escapes it as a bare AttributeError; this says
  which key and which fields there are instead, and exits with 2.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as error:
    spec = config_spec_of(argv[1:])
    message = f"bad config override ({error})"
    try:
      if spec is not None:
        check_overrides(load_config(spec), config_flag_overrides(argv[1:]),
                        spec)
    except LaunchError as launch_error:
      message = str(launch_error)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# --- Runs and their workdirs. ---


def _format_value(text: str, config: ml_collections.ConfigDict, key: str):
  """The canonical text of a value, e.g. '1e-4' -> '0.0001' for a float."""
  *parents, leaf = key.split(".")
  for part in parents:
    config = config[part]
  if config.get_type(leaf) is float:
    return repr(float(text))
  return text


def run_name(overrides: dict, config: ml_collections.ConfigDict) -> str:
  """A filesystem-safe name of a run, 'key=value,key=value'."""
  name = ",".join(f"{key}={_format_value(text, config, key)}"
                  for key, text in overrides.items())
  name = _UNSAFE_CHARS.sub("_", name)
  if len(name) > _MAX_NAME_LEN:
    digest = hashlib.md5(name.encode()).hexdigest()[:10]
    name = name[:_MAX_NAME_LEN - 11] + "-" + digest
  return name


def make_runs(config_spec: str, grid: Sequence[dict], workdir_root: str,
              extra_args: Sequence[str] = (),
              python: str = sys.executable,
              train_script: str = str(TRAIN_SCRIPT)) -> list:
  """Checks every run's overrides and builds its workdir and command.

  Args:
    config_spec: the --config value ('experiments/NAME.py[:ARG]').
    grid: the runs' overrides, from expand_grid.
    workdir_root: each run gets workdir_root/<run name>.
    extra_args: further train.py flags, the same for every run (their
      --config.KEY=VALUE overrides are checked too).
    python: the interpreter in the commands.
    train_script: the path of launch/train.py.

  Returns:
    The list of Run, in grid order.

  Raises:
    LaunchError: for an unknown key, a bad value, or two runs that would
      share a workdir; nothing has started then.
  """
  for arg in extra_args:
    if arg.split("=")[0] in ("--config", "--workdir"):
      raise LaunchError(f"{arg!r}: the sweep sets --config and --workdir "
                        "of each run itself")
  config = load_config(config_spec)
  extra_overrides = config_flag_overrides(extra_args)
  clash = set(extra_overrides).intersection(grid[0] if grid else ())
  if clash:
    raise LaunchError(f"Key(s) {sorted(clash)} are both swept and set by an "
                      "extra --config flag")
  config = check_overrides(config, extra_overrides, config_spec)
  runs, names = [], {}
  for overrides in grid:
    check_overrides(config, overrides, config_spec)
    name = run_name(overrides, config)
    if name in names:
      raise LaunchError(f"Runs {names[name]} and {overrides} would share the "
                        f"workdir {name!r}")
    names[name] = overrides
    workdir = os.path.join(workdir_root, name)
    command = [python, train_script, f"--config={config_spec}",
               f"--workdir={workdir}",
               *(f"--config.{key}={text}" for key, text in overrides.items()),
               *extra_args]
    runs.append(Run(name, dict(overrides), workdir, command))
  return runs


def is_finished(run: Run) -> bool:
  """Whether train.py exited 0 for this run before (its DONE marker)."""
  return os.path.exists(os.path.join(run.workdir, DONE_MARKER))
