"""Helpers shared by the TFDS builders: seeding, config names, file scanning.

Every random choice a builder makes comes from `stable_rng`, a numpy Generator
seeded from a SHA-256 of its parts, so a build is the same on every machine
and Python process (unlike Python's salted `hash()`).
"""

import collections
import errno
import dataclasses
import hashlib
import pathlib
from typing import Callable, Iterable, TypeVar

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from wavegan_jax.data import media

T = TypeVar("T")


def stable_hash(*parts) -> int:
  """A 64-bit integer from the string forms of `parts`, stable everywhere."""
  text = "\x1f".join(str(part) for part in parts)
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def stable_rng(*parts) -> np.random.Generator:
  """A numpy Generator seeded by `stable_hash(*parts)`."""
  return np.random.default_rng(stable_hash(*parts))


def hash_fraction(*parts) -> float:
  """A number in [0, 1) fixed by `parts` (for hash-based splits)."""
  return stable_hash(*parts) / 2.0**64


def config_from_fields(default: tfds.core.BuilderConfig,
                       **fields) -> tfds.core.BuilderConfig:
  """A copy of `default` with `fields` changed and a name that says which.

  The name lists the changed fields (e.g. `num_frames16_seed3`, or
  `fsdd_slice_len2048` from the 'fsdd' config), so builds of different
  configs land in different folders of the data dir.

  Args:
    default: the builder's default config.
    **fields: config fields to override.

  Returns:
    The new config ('default' when nothing changed).
  """
  known = {f.name for f in dataclasses.fields(default)}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f"unknown config fields {unknown} for {default.name!r}; "
                     f"known: {sorted(known - {'name', 'version'})}")
  changed = {key: value for key, value in sorted(fields.items())
             if getattr(default, key) != value}
  if not changed:
    return default
  # A named starting point other than 'default' stays in the name.
  parts = [] if default.name == "default" else [default.name]
  parts += [f"{key}{value}" for key, value in changed.items()]
  return dataclasses.replace(default, name="_".join(parts), **changed)


def find_files(folder: pathlib.Path, extensions: Iterable[str]):
  """Entries under `folder` (recursively) named with one of `extensions`,
  sorted: files, and also folders, dangling links and link loops so named,
  which the builders count as skipped (check_regular_file), not ignore."""
  extensions = tuple(extensions)
  return sorted(path for path in folder.rglob("*")
                if path.suffix.lower() in extensions)


def check_regular_file(path: pathlib.Path) -> None:
  """Raises MediaError 'not_a_file' unless `path` is (links to) a file."""
  if path.is_file():
    return
  if path.is_symlink():
    try:
      path.stat()
      detail = "a link to something that is not a file"
    except OSError as error:
      detail = ("a link loop" if error.errno == errno.ELOOP
                else "a dangling link")
  elif path.is_dir():
    detail = "a folder"
  else:
    detail = "not a regular file"
  raise media.MediaError(path, "not_a_file", detail)


class SkipLog:
  """Collects files skipped for a `media.MediaError` and logs a summary."""

  def __init__(self):
    self.counts = collections.Counter()
    self.skipped: list[tuple[str, str]] = []

  def load(self, loader: Callable[[], T]) -> T | None:
    """Runs `loader`; returns None (and logs) when it raises MediaError."""
    try:
      return loader()
    except media.MediaError as error:
      self.add(error)
      return None

  def add(self, error: media.MediaError) -> None:
    logging.warning("skipping %s", error)
    self.counts[error.reason] += 1
    self.skipped.append((error.path, error.reason))

  def summarize(self, folder: pathlib.Path, kept: int) -> None:
    """Logs the counts; raises when nothing in `folder` was usable."""
    for reason in media.REASONS:
      if self.counts[reason]:
        logging.warning("skipped %d file(s) in %s: %s", self.counts[reason],
                        folder, reason)
    if not kept:
      raise ValueError(
          f"no usable file in {folder}: {sum(self.counts.values())} skipped "
          f"({dict(self.counts)})")
    logging.info("kept %d source(s) from %s", kept, folder)


def manual_dir_of(dl_manager) -> pathlib.Path | None:
  """The manual dir given to the build, or None when none was given.

  TFDS puts a default manual dir at `<download_dir>/manual` when none is
  given; that one counts as given only when it holds files.

  Raises:
    FileNotFoundError: a manual dir was given but does not exist.
  """
  folder = getattr(dl_manager, "_manual_dir", None)
  if folder is None:
    return None
  folder = pathlib.Path(folder)
  default = pathlib.Path(getattr(dl_manager, "_download_dir", "")) / "manual"
  if folder == default and (not folder.is_dir() or not any(folder.iterdir())):
    return None
  if not folder.is_dir():
    raise FileNotFoundError(f"manual dir {folder} does not exist")
  return folder


SPLIT_BY = ("hash", "fsdd_takes", "none")


def split_of(name: str, split_by: str, test_fraction: float) -> str:
  """'train' or 'test' for a source file named `name` (relative path).

  Args:
    name: the file's path relative to the folder.
    split_by: 'hash' (a stable hash of the name against test_fraction),
      'fsdd_takes' (FSDD's official split: takes 0-4 are test; names must be
      `{digit}_{speaker}_{take}.ext`), or 'none' (everything is train).
    test_fraction: the share of files 'hash' puts in test.

  Returns:
    The split name.
  """
  if split_by == "none":
    return "train"
  if split_by == "hash":
    return "test" if hash_fraction("split", name) < test_fraction else "train"
  if split_by == "fsdd_takes":
    try:
      take = int(pathlib.PurePath(name).stem.split("_")[2])
    except (IndexError, ValueError) as error:
      raise ValueError(f"{name}: split_by='fsdd_takes' needs FSDD names "
                       "digit_speaker_take") from error
    return "test" if take < 5 else "train"
  raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")


def folder_splits(folder: pathlib.Path, files, split_by: str,
                  test_fraction: float) -> dict[str, list[pathlib.Path]]:
  """Groups `files` by split; splits without files are left out."""
  splits = {}
  for path in files:
    name = path.relative_to(folder).as_posix()
    splits.setdefault(split_of(name, split_by, test_fraction), []).append(path)
  return splits


def folder_split_files(dl_manager, what: str, extensions, split_by: str,
                       test_fraction: float):
  """(folder, {split: files}) of a folder builder's manual dir.

  Raises:
    FileNotFoundError: no folder was given, or it holds no such files.
  """
  folder = source_folder(dl_manager, what)
  files = find_files(folder, extensions)
  if not files:
    raise FileNotFoundError(f"no {what} {extensions} in {folder}")
  return folder, dict(sorted(
      folder_splits(folder, files, split_by, test_fraction).items()))


def source_folder(dl_manager, what: str) -> pathlib.Path:
  """The user's folder, passed to a folder builder as its manual dir."""
  folder = manual_dir_of(dl_manager)
  if folder is None:
    raise FileNotFoundError(
        f"no folder given: pass the folder of {what} as the manual dir")
  return folder
