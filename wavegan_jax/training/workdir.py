"""One run per workdir, with one config: the lock and the config check.

`WorkdirLock` is an exclusive `fcntl.flock` on `<workdir>/.lock`, held for
the whole of launch/train.py. The file holds the holder's pid and host, so a
second run on the workdir stops at once and names them. The kernel drops
the lock when its process dies (a SIGKILL, a crash), so a lock left by a
dead process is simply taken; a warning names the process whose run ended
without releasing it.

`check_config` compares a rerun's resolved config with the `config.json`
the workdir already holds, so that a rerun with other overrides never
replaces the description of the weights already trained.

flock is advisory and per host: runs on two hosts sharing a workdir over a
network file system are only kept apart where that file system supports it.
"""

import fcntl
import json
import os
import socket
from typing import Any

from absl import logging
import ml_collections

from wavegan_jax import errors

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"
# Where the data lives, not what is trained: a rerun may point elsewhere.
LOCATION_KEYS = ("data.data_dir", "data.manual_dir")


class WorkdirLock:
  """An exclusive lock on a workdir (a context manager).

  Attributes:
    path: the lock file, <workdir>/.lock.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._file = None

  def acquire(self) -> None:
    """Takes the lock, or raises at once if a live process holds it.

    Raises:
      errors.WorkdirLockedError: naming the holder's pid and host.
    """
    handle = open(self.path, "a+")  # pylint: disable=consider-using-with
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      handle.seek(0)
      holder = _parse_holder(handle.read())
      handle.close()
      raise errors.WorkdirLockedError(
          f"{os.path.dirname(self.path) or '.'}: in use by process "
          f"{holder.get('pid', '?')} on host {holder.get('host', '?')} "
          f"(lock {self.path}); wait for that run to end or stop it") from None
    handle.seek(0)
    previous = _parse_holder(handle.read())
    if previous:
      logging.warning(
          "%s: taking over the lock of process %s on host %s, which ended "
          "without releasing it", self.path, previous.get("pid", "?"),
          previous.get("host", "?"))
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(),
                             "host": socket.gethostname()}) + "\n")
    handle.flush()
    self._file = handle

  def release(self) -> None:
    """Empties the lock file (a clean end) and drops the lock."""
    if self._file is None:
      return
    self._file.seek(0)
    self._file.truncate()
    self._file.flush()
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()
    self._file = None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()


def _parse_holder(text: str) -> dict[str, Any]:
  try:
    holder = json.loads(text)
  except ValueError:
    return {}
  return holder if isinstance(holder, dict) else {}


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{'a.b.c': leaf} of nested dicts."""
  if not isinstance(tree, dict):
    return {prefix: tree}
  flat = {}
  for key, value in tree.items():
    flat.update(_flatten(value, f"{prefix}{key}." if isinstance(
        value, dict) else f"{prefix}{key}"))
  return flat


def config_json(config: ml_collections.ConfigDict) -> str:
  """The text launch/train.py writes as <workdir>/config.json."""
  return config.to_json_best_effort(indent=1, sort_keys=True)


def config_differences(old: dict[str, Any], new: dict[str, Any]
                      ) -> list[str]:
  """'key: old -> new' for every leaf that differs (location keys aside)."""
  old_flat, new_flat = _flatten(old), _flatten(new)
  missing = object()
  lines = []
  for key in sorted(set(old_flat) | set(new_flat)):
    if key in LOCATION_KEYS:
      continue
    before, after = old_flat.get(key, missing), new_flat.get(key, missing)
    if before != after:
      lines.append(f"{key}: "
                   f"{'(absent)' if before is missing else json.dumps(before)}"
                   f" -> "
                   f"{'(absent)' if after is missing else json.dumps(after)}")
  return lines


def check_config(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Raises if the workdir holds another config; True if it holds none yet.

  Raises:
    errors.WorkdirConfigError: naming each key whose value differs.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return True
  try:
    with open(path) as f:
      old = json.load(f)
  except (OSError, ValueError) as error:
    raise errors.WorkdirConfigError(
        f"{path}: unreadable ({error}); move it away to start over in this "
        "workdir") from None
  differences = config_differences(old, json.loads(config_json(config)))
  if differences:
    shown = "; ".join(differences[:8])
    if len(differences) > 8:
      shown += f" (and {len(differences) - 8} more)"
    raise errors.WorkdirConfigError(
        f"{path}: this run's config differs from the workdir's in "
        f"{len(differences)} key(s): {shown}; rerun with the workdir's "
        "settings, or use a new --workdir")
  return False


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes config.json atomically (a kill leaves the old or the new)."""
  path = os.path.join(workdir, CONFIG_FILE)
  temporary = f"{path}.{os.getpid()}.tmp"
  with open(temporary, "w") as f:
    f.write(config_json(config))
  os.replace(temporary, path)


def check_writable(workdir: str) -> None:
  """Raises a one-line error unless `workdir` is (or can be) a directory
  this process may write in."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise errors.PathError(workdir, "is a file, not a directory")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as error:
    raise errors.PathError(
        workdir, f"cannot create it ({error.strerror or error})") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise errors.PathError(workdir, "is not writable")

