"""Tests for the av_digits TFDS builder (wavegan_jax/data/av_digits.py)."""

import gzip

import numpy as np
import pytest
import soundfile

from wavegan_jax import errors
from wavegan_jax.data import av_digits
from wavegan_jax.data import pipeline

SAMPLES_PER_FRAME = 256


@pytest.fixture(scope="module")
def examples(av_digits_data_dir):
  builder = pipeline.get_builder("av_digits", str(av_digits_data_dir))
  return {split: list(builder.as_dataset(split=split).as_numpy_iterator())
          for split in ("train", "test")}


def test_counts_shapes_and_dtypes(examples):
  assert len(examples["train"]) == 2700 and len(examples["test"]) == 300
  example = examples["test"][0]
  assert example["video"].shape == (32, 32, 32, 1)
  assert example["video"].dtype == np.uint8
  for key in ("target", "reference"):
    assert example[key].shape == (8192,) and example[key].dtype == np.int16
  for key in ("digit", "speaker"):
    assert example[key].dtype == np.int64
  for key in ("onset_frame", "image_id"):
    assert example[key].dtype == np.int32
  assert isinstance(example["target_id"], bytes)


def test_target_is_the_recording_at_the_onset(examples, manual_dir):
  recordings = manual_dir / "fsdd" / "recordings"
  for example in examples["test"][:40]:
    stem = example["target_id"].decode()
    recording, rate = soundfile.read(recordings / f"{stem}.wav",
                                     dtype="int16")
    assert rate == 8000
    start = int(example["onset_frame"]) * SAMPLES_PER_FRAME
    target = example["target"]
    assert not target[:start].any()
    assert target[start:start + SAMPLES_PER_FRAME].any()
    audible = min(len(recording), 8192 - start)
    np.testing.assert_array_equal(target[start:start + audible],
                                  recording[:audible])
    assert not target[start + audible:].any()
    # The whole recording fits whenever it can.
    assert audible == len(recording) or start == 0


def test_image_visible_exactly_while_spoken(examples):
  for example in examples["train"][:300]:
    onset = int(example["onset_frame"])
    visible = example["video"].reshape(32, -1).any(axis=1)
    sounding = example["target"].reshape(32, -1).any(axis=1)
    # Visible from the onset frame, contiguously, over every frame with sound
    # (a recording may end in a few exact zeros, hence <= not ==).
    assert visible[onset] and not visible[:onset].any()
    frames = np.nonzero(visible)[0]
    assert frames.max() - frames.min() + 1 == len(frames)
    assert not (sounding & ~visible).any()


def test_visible_frames_match_recording_length(examples, manual_dir):
  recordings = manual_dir / "fsdd" / "recordings"
  for example in examples["test"][:40]:
    info = soundfile.info(recordings / f"{example['target_id'].decode()}.wav")
    onset = int(example["onset_frame"])
    expected = av_digits.spoken_frames(onset, min(info.frames,
                                                  8192 - onset * 256), 256, 32)
    visible = np.nonzero(example["video"].reshape(32, -1).any(axis=1))[0]
    np.testing.assert_array_equal(visible, np.arange(expected.start,
                                                     expected.stop))


def test_labels_reference_and_image_ids(examples):
  for split, (low, high) in (("train", (0, 8000)), ("test", (8000, 10000))):
    for example in examples[split]:
      digit, speaker, _ = example["target_id"].decode().split("_")
      ref_digit, ref_speaker, _ = example["reference_id"].decode().split("_")
      assert int(digit) == example["digit"]
      assert av_digits.SPEAKERS[example["speaker"]] == speaker
      assert ref_speaker == speaker and ref_digit != digit
      assert low <= example["image_id"] < high


def test_image_is_the_spoken_digit(examples, manual_dir):
  labels = av_digits.read_idx(manual_dir / "mnist" / av_digits.MNIST_LABELS)
  for example in examples["train"][:300] + examples["test"]:
    assert labels[example["image_id"]] == example["digit"]


def test_splits_are_disjoint_by_take_and_image(examples):
  takes = {split: {int(e["target_id"].decode().split("_")[2])
                   for e in examples[split]} for split in examples}
  assert takes["train"] == set(range(5, 50))
  assert takes["test"] == set(range(0, 5))
  ref_takes = {int(e["reference_id"].decode().split("_")[2])
               for e in examples["test"]}
  assert ref_takes <= set(range(0, 5))
  images = {split: {int(e["image_id"]) for e in examples[split]}
            for split in examples}
  assert not images["train"] & images["test"]
  assert len({e["target_id"] for e in examples["train"]}) == 2700


def test_long_recordings_are_cropped(examples):
  # 17 FSDD recordings are longer than 8192 samples: onset 0, target full.
  long_ones = [e for split in examples.values() for e in split
               if e["target"][-SAMPLES_PER_FRAME:].any()
               and e["onset_frame"] == 0]
  assert len(long_ones) >= 17


def test_build_is_deterministic(examples, manual_dir, tmp_path):
  pipeline.prepare_dataset("av_digits", data_dir=str(tmp_path),
                           manual_dir=str(manual_dir))
  builder = pipeline.get_builder("av_digits", str(tmp_path))
  again = {e["target_id"]: e
           for e in builder.as_dataset(split="test").as_numpy_iterator()}
  assert len(again) == 300
  for example in examples["test"]:
    other = again[example["target_id"]]
    for key, value in example.items():
      np.testing.assert_array_equal(value, other[key], err_msg=key)


def test_manual_dir_errors(tmp_path):
  with pytest.raises(FileNotFoundError) as caught:
    av_digits.check_manual_dir(tmp_path)
  assert str(caught.value) == (
      f"manual dir {tmp_path} lacks fsdd/recordings/*.wav, "
      "mnist/t10k-images-idx3-ubyte.gz, mnist/t10k-labels-idx1-ubyte.gz; "
      f"expected {av_digits.EXPECTED_LAYOUT}")


def test_shift_image_and_place():
  image = np.arange(16, dtype=np.uint8).reshape(4, 4)
  np.testing.assert_array_equal(av_digits.shift_image(image, 1, -1),
                                [[0, 0, 0, 0], [1, 2, 3, 0], [5, 6, 7, 0],
                                 [9, 10, 11, 0]])
  np.testing.assert_array_equal(av_digits.place(np.array([1, 2, 3]), 3, 5),
                                [0, 0, 0, 1, 2])


def test_image_wobbles_by_at_most_two_pixels(examples):
  moving = 0
  for example in examples["test"][:60]:
    video = example["video"][..., 0]
    frames = np.nonzero(video.reshape(32, -1).any(axis=1))[0]
    base = video[frames[0]]  # the walk starts unshifted
    shifts = []
    for frame in frames:
      shifts.append(next((dy, dx) for dy in range(-2, 3)
                         for dx in range(-2, 3)
                         if np.array_equal(
                             av_digits.shift_image(base, dy, dx),
                             video[frame])))
    steps = np.abs(np.diff(np.array(shifts), axis=0))
    assert (steps <= 1).all()
    moving += len(set(shifts)) > 1
  assert moving >= 50


def _generate(manual_dir, data_dir, split, **fields):
  """{key: example} of one speaker's takes 0-6 (a fast slice of the build)."""
  builder = pipeline.get_builder("av_digits", str(data_dir), fields)
  files = sorted(p for p in (manual_dir / "fsdd" / "recordings").glob(
      "*_theo_*.wav") if int(p.stem.split("_")[2]) <= 6)
  images = av_digits.read_idx(manual_dir / "mnist" / av_digits.MNIST_IMAGES)
  labels = av_digits.read_idx(manual_dir / "mnist" / av_digits.MNIST_LABELS)
  return dict(builder._generate_examples(split, files, images, labels))


def test_examples_per_take_draws_more_train_examples(manual_dir, tmp_path):
  one = _generate(manual_dir, tmp_path, "train")
  three = _generate(manual_dir, tmp_path, "train", examples_per_take=3)
  assert len(one) == 20 and len(three) == 60  # Takes 5 and 6, 10 digits.
  for stem, example in one.items():
    # Draw 0 is the one-per-take example, unchanged.
    for key, value in example.items():
      np.testing.assert_array_equal(value, three[stem][key], err_msg=key)
    draws = [three[stem], three[f"{stem}/1"], three[f"{stem}/2"]]
    assert {d["target_id"] for d in draws} == {stem}
    recording = example["target"][int(example["onset_frame"]) *
                                  SAMPLES_PER_FRAME:]
    for draw in draws[1:]:  # The same recording, placed at its own onset.
      start = int(draw["onset_frame"]) * SAMPLES_PER_FRAME
      assert not draw["target"][:start].any()
      audible = min(len(recording), 8192 - start)
      np.testing.assert_array_equal(draw["target"][start:start + audible],
                                    recording[:audible])
      assert draw["digit"] == example["digit"]
  # Different images and onsets across draws (not copies of draw 0).
  images = [[three[f"{s}/{d}" if d else s]["image_id"] for d in range(3)]
            for s in one]
  assert sum(len(set(row)) == 3 for row in images) >= 15
  # The test split stays one per recording.
  test = _generate(manual_dir, tmp_path, "test", examples_per_take=3)
  assert len(test) == 50 and all("/" not in key for key in test)
  with pytest.raises(ValueError, match="examples_per_take must be >= 1"):
    pipeline.get_builder("av_digits", str(tmp_path),
                         {"examples_per_take": 0}).info


class _FakeDownloads:
  """A dl_manager whose downloads are local copies (no network here)."""

  def __init__(self, tmp_path, manual_dir, damage=None):
    self._manual_dir = None
    self._download_dir = str(tmp_path / "downloads")
    self.urls = None
    self.archive = tmp_path / "free-spoken-digit-dataset-1.0.10"
    (self.archive / "recordings").mkdir(parents=True)
    for path in (manual_dir / "fsdd" / "recordings").glob("*.wav"):
      (self.archive / "recordings" / path.name).symlink_to(path)
    self.mnist = {}
    for key, name in (("images", av_digits.MNIST_IMAGES),
                      ("labels", av_digits.MNIST_LABELS)):
      # TFDS un-gzips single files.
      self.mnist[key] = tmp_path / name.removesuffix(".gz")
      with gzip.open(manual_dir / "mnist" / name) as source:
        self.mnist[key].write_bytes(source.read())
    if damage:
      damage(self)

  def download_and_extract(self, urls):
    self.urls = urls
    return {"fsdd": str(self.archive), **{k: str(v)
                                          for k, v in self.mnist.items()}}


def test_downloads_come_from_the_pinned_release_and_are_verified(
    manual_dir, tmp_path):
  builder = av_digits.AvDigits(data_dir=str(tmp_path / "tfds"))
  downloads = _FakeDownloads(tmp_path, manual_dir)
  # pylint: disable-next=protected-access
  splits = builder._split_generators(downloads)
  assert sorted(splits) == ["test", "train"]
  assert downloads.urls["fsdd"] == (
      "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/"
      "refs/tags/v1.0.10.zip")
  assert "heads" not in downloads.urls["fsdd"]


@pytest.mark.parametrize("what", ["recording", "labels"])
def test_a_damaged_download_is_one_error_naming_it(manual_dir, tmp_path,
                                                   what):
  def damage(downloads):
    if what == "recording":
      path = downloads.archive / "recordings" / "3_theo_7.wav"
      data = path.read_bytes()
      path.unlink()
      path.write_bytes(data[:-100])  # Cut off.
    else:
      labels = downloads.mnist["labels"]
      labels.write_bytes(labels.read_bytes()[:-1] + b"\x03")
  downloads = _FakeDownloads(tmp_path, manual_dir, damage)
  builder = av_digits.AvDigits(data_dir=str(tmp_path / "tfds"))
  with pytest.raises(errors.SourceChangedError) as error:
    builder._split_generators(downloads)  # pylint: disable=protected-access
  message = str(error.value)
  if what == "recording":
    assert message.startswith(
        f"{downloads.archive / 'recordings'}: FSDD v1.0.10 recordings do not "
        "match the recorded checksum (3000 files, SHA-256 ")
  else:
    assert message.startswith(
        f"{downloads.mnist['labels']}: MNIST t10k-labels-idx1-ubyte.gz does "
        "not match the recorded checksum (SHA-256 ")
  assert message.endswith("a damaged download; delete it from the TFDS "
                          "downloads folder and retry, or give a manual dir")
