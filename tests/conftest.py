"""Shared test fixtures: where the raw FSDD / MNIST copies live."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def manual_dir_path() -> pathlib.Path:
  """The raw data folder: $WAVEGAN_MANUAL_DIR, else ../shared/data."""
  env = os.environ.get("WAVEGAN_MANUAL_DIR")
  return pathlib.Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def manual_dir() -> pathlib.Path:
  path = manual_dir_path()
  if not (path / "fsdd" / "recordings").is_dir():
    pytest.fail(f"FSDD copy not found under {path}; set WAVEGAN_MANUAL_DIR")
  return path
