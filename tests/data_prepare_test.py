"""Tests for launch/prepare_data.py, run as the command line runs it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from wavegan_jax import errors
from wavegan_jax.data import pipeline
from conftest import REPO_ROOT  # pylint: disable=g-bad-import-order


def _prepare(*args):
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
  return subprocess.run(
      [sys.executable, str(REPO_ROOT / "launch" / "prepare_data.py"), *args],
      capture_output=True, text=True, env=env, timeout=300, check=False)


def test_prepare_data_bad_manual_dir(tmp_path):
  result = _prepare("--dataset=av_digits", f"--data_dir={tmp_path}",
                    f"--manual_dir={tmp_path / 'nope'}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: manual dir {tmp_path / 'nope'} does not exist; expected "
      "fsdd/recordings/{digit}_{speaker}_{take}.wav and "
      "mnist/t10k-images-idx3-ubyte.gz, mnist/t10k-labels-idx1-ubyte.gz")
  assert "Traceback" not in result.stderr


def test_prepare_data_audio_folder_twice(make_media, tmp_path):
  for take in (1, 7, 8):
    make_media.wav(f"2_lucas_{take}.wav", make_media.tone(3000))
  args = ("--dataset=audio_folder", "--config=fsdd", "--slice_len=2048",
          f"--data_dir={tmp_path / 'tfds'}",
          f"--manual_dir={make_media.folder}")
  # Built here in-process (one interpreter start fewer); the entry point
  # then finds it prepared.
  _, already = pipeline.prepare_dataset(
      "audio_folder", data_dir=str(tmp_path / "tfds"),
      manual_dir=str(make_media.folder),
      builder_kwargs={"config": "fsdd", "slice_len": 2048})
  assert not already
  result = _prepare(*args)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].startswith("dataset=audio_folder/fsdd_slice_len2048 dir=")
  assert lines[1:3] == ["split=test examples=1", "split=train examples=2"]
  assert lines[-1].startswith("already prepared; nothing to do (")
  dataset = pipeline.make_dataset(
      "audio_folder", "train", global_batch_size=2,
      data_dir=str(tmp_path / "tfds"),
      builder_kwargs={"config": "fsdd", "slice_len": 2048},
      process_index=0, process_count=1)
  batch = next(dataset.as_numpy_iterator())
  assert batch["audio"].shape == (2, 2048, 1)
  assert batch["audio"].dtype == np.float32


def test_prepare_data_examples_per_take_reaches_the_builder(tmp_path):
  # A bad value is refused by av_digits itself, so the flag got there.
  result = _prepare("--dataset=av_digits", "--examples_per_take=0",
                    f"--data_dir={tmp_path}")
  assert result.returncode == 2
  last_line = result.stderr.strip().splitlines()[-1]
  assert last_line.startswith("error: ")
  assert last_line.endswith("examples_per_take must be >= 1, got 0")
  # Builders without the field name it instead of ignoring it.
  result = _prepare("--dataset=audio_folder", "--config=fsdd",
                    "--examples_per_take=5", f"--data_dir={tmp_path}",
                    f"--manual_dir={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: unknown config fields ['examples_per_take'] for 'fsdd'")
  assert "Traceback" not in result.stderr


def test_prepared_folder_data_is_not_reused_for_another_folder(
    make_media, tmp_path):
  """issue 40 case 1: the prepared data names the folder it came from."""
  for take in (1, 2):
    make_media.wav(f"a/clip_{take}.wav", make_media.tone(3000))
  make_media.wav("b/other.wav", make_media.tone(5000))
  folder_a, folder_b = make_media.folder / "a", make_media.folder / "b"
  kwargs = {"split_by": "none", "slice_len": 2048, "sample_rate": 8000}
  data_dir = str(tmp_path / "tfds")
  builder, already = pipeline.prepare_dataset(
      "audio_folder", data_dir=data_dir, manual_dir=str(folder_a),
      builder_kwargs=kwargs)
  assert not already and builder.info.splits["train"].num_examples == 2
  _, already = pipeline.prepare_dataset(
      "audio_folder", data_dir=data_dir, manual_dir=str(folder_a),
      builder_kwargs=kwargs)
  assert already
  result = _prepare("--dataset=audio_folder", "--split_by=none",
                    "--slice_len=2048", "--sample_rate=8000",
                    f"--data_dir={data_dir}", f"--manual_dir={folder_b}")
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  line = result.stderr.strip().splitlines()[-1]
  assert line == (
      f"error: {builder.data_dir}: prepared from {folder_a.resolve()} "
      f"(2 files), not from {folder_b.resolve()} (1 files); give another "
      f"--data_dir, or delete {builder.data_dir} to prepare it again")
  # The same folder with a file added is refused as well.
  make_media.wav("a/clip_3.wav", make_media.tone(3000))
  with pytest.raises(errors.SourceChangedError, match="2 then, 3 now"):
    pipeline.prepare_dataset("audio_folder", data_dir=data_dir,
                             manual_dir=str(folder_a), builder_kwargs=kwargs)
