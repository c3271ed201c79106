"""TFDS builder `av_digits`: spoken FSDD digits paired with MNIST videos.

One example per FSDD recording of the split (train: `examples_per_take`
per recording, each with its own onset, image, wobble and reference). The
video shows an MNIST image of the spoken digit from the onset frame for as
many frames as the recording lasts, wobbling by a small random walk; the
target is the recording starting exactly at the onset frame; the reference
is another recording by the same speaker of another digit. See
docs/design.md, "The data".

Splits follow FSDD's official one: train = takes 5-49 with MNIST t10k images
0-7999, test = takes 0-4 with images 8000-9999.
"""

import dataclasses
import gzip
import hashlib
import pathlib

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from wavegan_jax import errors
from wavegan_jax.data import common
from wavegan_jax.data import media

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD_SAMPLE_RATE = 8000
# A fixed release, not a branch: its recordings do not change under a run.
FSDD_RELEASE = "v1.0.10"
FSDD_URL = ("https://github.com/Jakobovski/free-spoken-digit-dataset/"
            f"archive/refs/tags/{FSDD_RELEASE}.zip")
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = "t10k-labels-idx1-ubyte.gz"
# Downloads are checked by their content, not the archive's bytes (GitHub
# does not promise byte-stable archives): `recordings_digest` of the 3000
# FSDD recordings, and the SHA-256 of each MNIST file un-gzipped. Computed
# on 2026-12-06 from the FSDD and MNIST copies in ../shared/data (3000
# recordings, 6 speakers), which the tests build from.
FSDD_RECORDINGS = 3000
FSDD_RECORDINGS_SHA256 = (
    "a2e8a660492f28d9eed6270b290d26cbc5c81d6077ce87d3c0ad5adf4d4ee696")
MNIST_SHA256 = {
    MNIST_IMAGES:
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    MNIST_LABELS:
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Which FSDD takes and which MNIST t10k images each split draws from.
SPLITS = {
    "train": {"takes": range(5, 50), "images": range(0, 8000)},
    "test": {"takes": range(0, 5), "images": range(8000, 10000)},
}
MAX_WALK_PX = 2
EXPECTED_LAYOUT = (f"fsdd/recordings/{{digit}}_{{speaker}}_{{take}}.wav and "
                   f"mnist/{MNIST_IMAGES}, mnist/{MNIST_LABELS}")


@dataclasses.dataclass(eq=False)
class AvDigitsConfig(tfds.core.BuilderConfig):
  """Clip geometry of AV-digits.

  Attributes:
    sample_rate: audio rate in Hz (FSDD is resampled when not 8000).
    num_samples: clip length in samples.
    num_frames: video frames per clip; must divide num_samples.
    frame_size: frame height and width in pixels.
    seed: seed of every random choice (onsets, images, references, walks).
    examples_per_take: train examples drawn per FSDD recording. With one,
      each recording comes with one MNIST image and a generator can learn
      image -> recording by heart; more gives each recording several images
      and onsets. The first draw is the one-per-take example itself; the
      test split always has one per recording, so evaluations compare.
  """
  sample_rate: int = FSDD_SAMPLE_RATE
  num_samples: int = 8192
  num_frames: int = 32
  frame_size: int = 32
  seed: int = 0
  examples_per_take: int = 1


def check_manual_dir(folder: pathlib.Path) -> None:
  """Raises FileNotFoundError naming `folder` when it lacks the sources."""
  folder = pathlib.Path(folder)
  missing = []
  if not any((folder / "fsdd" / "recordings").glob("*.wav")):
    missing.append("fsdd/recordings/*.wav")
  missing += [f"mnist/{name}" for name in (MNIST_IMAGES, MNIST_LABELS)
              if not (folder / "mnist" / name).is_file()]
  if missing:
    raise FileNotFoundError(
        f"manual dir {folder} lacks {', '.join(missing)}; expected "
        f"{EXPECTED_LAYOUT}")


def recordings_digest(folder: pathlib.Path) -> tuple[int, str]:
  """(count, SHA-256 over the sorted *.wav names and their files' SHA-256)."""
  digest = hashlib.sha256()
  files = sorted(pathlib.Path(folder).glob("*.wav"))
  for path in files:
    digest.update(path.name.encode() + b"\0" +
                  hashlib.sha256(path.read_bytes()).digest())
  return len(files), digest.hexdigest()


def _file_sha256(path: pathlib.Path) -> str:
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as file:
    return hashlib.sha256(file.read()).hexdigest()


def verify_download(recordings: pathlib.Path, images: pathlib.Path,
                    labels: pathlib.Path) -> None:
  """Checks downloaded sources against the recorded digests.

  Raises:
    errors.SourceChangedError: naming the file or folder, both digests and
      what to do.
  """
  count, digest = recordings_digest(recordings)
  if (count, digest) != (FSDD_RECORDINGS, FSDD_RECORDINGS_SHA256):
    raise errors.SourceChangedError(
        f"{recordings}: FSDD {FSDD_RELEASE} recordings do not match the "
        f"recorded checksum ({count} files, SHA-256 {digest}; expected "
        f"{FSDD_RECORDINGS} files, {FSDD_RECORDINGS_SHA256}): a damaged "
        "download; delete it from the TFDS downloads folder and retry, or "
        "give a manual dir")
  for name, path in ((MNIST_IMAGES, images), (MNIST_LABELS, labels)):
    digest = _file_sha256(pathlib.Path(path))
    if digest != MNIST_SHA256[name]:
      raise errors.SourceChangedError(
          f"{path}: MNIST {name} does not match the recorded checksum "
          f"(SHA-256 {digest}, expected {MNIST_SHA256[name]}): a damaged "
          "download; delete it from the TFDS downloads folder and retry, or "
          "give a manual dir")


def read_idx(path: pathlib.Path) -> np.ndarray:
  """Reads an IDX file (MNIST's format, gzipped or not) into a uint8 array."""
  path = pathlib.Path(path)
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rb") as file:
    data = file.read()
  if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
    raise ValueError(f"{path}: not an unsigned-byte IDX file")
  rank = data[3]
  shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
                for i in range(rank))
  array = np.frombuffer(data, np.uint8, offset=4 + 4 * rank)
  if array.size != int(np.prod(shape)):
    raise ValueError(f"{path}: holds {array.size} bytes, header says {shape}")
  return array.reshape(shape)


def parse_fsdd_name(path: pathlib.Path) -> tuple[int, str, int]:
  """(digit, speaker, take) from an FSDD name `{digit}_{speaker}_{take}`."""
  try:
    digit, speaker, take = path.stem.split("_")
    return int(digit), speaker, int(take)
  except ValueError as error:
    raise ValueError(f"{path}: not an FSDD name digit_speaker_take") from error


def to_int16(samples: np.ndarray) -> np.ndarray:
  """float in [-1, 1] -> int16, the inverse of dividing by 32768."""
  return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def place(samples: np.ndarray, start: int, length: int) -> np.ndarray:
  """`samples` put into zeros of `length` at `start`, cropped at the end."""
  clip = np.zeros(length, samples.dtype)
  count = max(0, min(len(samples), length - start))
  clip[start:start + count] = samples[:count]
  return clip


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """Moves `image` by (dy, dx) pixels, filling the uncovered border with 0."""
  height, width = image.shape[:2]
  moved = np.zeros_like(image)
  moved[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = (
      image[max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)])
  return moved


def spoken_frames(onset_frame: int, num_audible: int, samples_per_frame: int,
                  num_frames: int) -> range:
  """The frames whose audio overlaps a recording of `num_audible` samples."""
  end = onset_frame + -(-num_audible // samples_per_frame)
  return range(onset_frame, min(end, num_frames))


class AvDigits(tfds.core.GeneratorBasedBuilder):
  """AV-digits: MNIST digit videos, FSDD spoken targets, same-speaker refs."""

  # TFDS's own lookup of this file needs `importlib_resources`, which its
  # install does not always bring; the path is known, so give it.
  code_path = pathlib.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [AvDigitsConfig(name="default")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Optional. A folder holding {EXPECTED_LAYOUT}; without one the builder "
      "downloads FSDD from GitHub and MNIST t10k.")

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    if config.examples_per_take < 1:
      raise ValueError(f"examples_per_take must be >= 1, got "
                       f"{config.examples_per_take}")
    if config.num_samples % config.num_frames:
      raise ValueError(f"num_frames {config.num_frames} must divide "
                       f"num_samples {config.num_samples}")
    zlib = tfds.features.Encoding.ZLIB
    size = config.frame_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(config.num_frames, size, size, 1), dtype=np.uint8,
                encoding=zlib),
            "target": tfds.features.Tensor(
                shape=(config.num_samples,), dtype=np.int16, encoding=zlib),
            "reference": tfds.features.Tensor(
                shape=(config.num_samples,), dtype=np.int16, encoding=zlib),
            "digit": tfds.features.ClassLabel(num_classes=10),
            "speaker": tfds.features.ClassLabel(names=SPEAKERS),
            "onset_frame": np.int32,
            "target_id": tfds.features.Text(),
            "reference_id": tfds.features.Text(),
            "image_id": np.int32,
        }),
        homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
    )

  def _split_generators(self, dl_manager):
    manual_dir = common.manual_dir_of(dl_manager)
    if manual_dir is not None:
      check_manual_dir(manual_dir)
      recordings = manual_dir / "fsdd" / "recordings"
      images_path = manual_dir / "mnist" / MNIST_IMAGES
      labels_path = manual_dir / "mnist" / MNIST_LABELS
    else:
      paths = dl_manager.download_and_extract({
          "fsdd": FSDD_URL,
          "images": MNIST_URL + MNIST_IMAGES,
          "labels": MNIST_URL + MNIST_LABELS,
      })
      found = sorted(pathlib.Path(paths["fsdd"]).glob("**/recordings"))
      if not found:
        raise FileNotFoundError(f"no recordings/ folder in {paths['fsdd']}")
      recordings = found[0]
      # download_and_extract un-gzips single files.
      images_path = pathlib.Path(paths["images"])
      labels_path = pathlib.Path(paths["labels"])
      verify_download(recordings, images_path, labels_path)
    images, labels = read_idx(images_path), read_idx(labels_path)
    files = sorted(recordings.glob("*.wav"))
    return {split: self._generate_examples(split, files, images, labels)
            for split in SPLITS}

  def _generate_examples(self, split, files, images, labels):
    config = self.builder_config
    takes, image_ids = SPLITS[split]["takes"], SPLITS[split]["images"]
    records = {}
    for path in files:
      digit, speaker, take = parse_fsdd_name(path)
      if take in takes:
        records[path.stem] = (digit, speaker, path)
    audio = {stem: to_int16(media.load_audio(
        path, config.sample_rate, num_channels=1)[:, 0])
             for stem, (_, _, path) in records.items()}
    by_speaker_digit = {}
    for stem, (digit, speaker, _) in sorted(records.items()):
      by_speaker_digit.setdefault((speaker, digit), []).append(stem)
    image_ids = np.asarray(image_ids)
    images_of_digit = {k: image_ids[labels[image_ids] == k] for k in range(10)}
    draws = config.examples_per_take if split == "train" else 1
    for stem, (digit, speaker, _) in sorted(records.items()):
      others = [s for (spk, d), stems in sorted(by_speaker_digit.items())
                if spk == speaker and d != digit for s in stems]
      if not others:
        raise ValueError(f"{stem}: speaker {speaker} has no other digit in "
                         f"the {split} split to use as reference")
      for draw in range(draws):
        # Draw 0 keeps the one-per-take seed: the same example as before.
        seed_parts = (config.seed, split, stem) + ((draw,) if draw else ())
        key = f"{stem}/{draw}" if draw else stem
        yield key, self._example(common.stable_rng(*seed_parts), stem, digit,
                                 speaker, audio, others, images,
                                 images_of_digit[digit])

  def _example(self, rng, stem, digit, speaker, audio, others, images,
               image_candidates):
    config = self.builder_config
    samples_per_frame = config.num_samples // config.num_frames
    recording = audio[stem]
    # The latest onset at which the whole recording still fits (0 if never).
    last_onset = max(0, (config.num_samples - len(recording))
                     // samples_per_frame)
    onset_frame = int(rng.integers(0, last_onset + 1))
    start = onset_frame * samples_per_frame
    target = place(recording, start, config.num_samples)
    audible = min(len(recording), config.num_samples - start)

    image_id = int(rng.choice(image_candidates))
    image = Image.fromarray(images[image_id]).resize(
        (config.frame_size, config.frame_size), Image.Resampling.BILINEAR)
    image = np.asarray(image, np.uint8)
    frames = spoken_frames(onset_frame, audible, samples_per_frame,
                           config.num_frames)
    steps = rng.integers(-1, 2, size=(len(frames), 2))
    steps[0] = 0
    walk = np.zeros_like(steps)
    for i in range(1, len(steps)):
      walk[i] = np.clip(walk[i - 1] + steps[i], -MAX_WALK_PX, MAX_WALK_PX)
    video = np.zeros((config.num_frames, config.frame_size, config.frame_size,
                      1), np.uint8)
    for frame, (dy, dx) in zip(frames, walk):
      video[frame, ..., 0] = shift_image(image, int(dy), int(dx))

    reference_id = str(rng.choice(others))
    reference = place(audio[reference_id], 0, config.num_samples)
    return {
        "video": video,
        "target": target,
        "reference": reference,
        "digit": digit,
        "speaker": speaker,
        "onset_frame": onset_frame,
        "target_id": stem,
        "reference_id": reference_id,
        "image_id": image_id,
    }

