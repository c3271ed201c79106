"""TFDS builder `audio_folder`: slices of any folder of audio, for WaveGAN.

The folder (wav, flac, ogg, mp3, searched recursively) is passed as the manual
dir. The config fields are the original WaveGAN loader's options: resampling,
channel count, slice length, first slice only, end padding, overlap and a
random start offset (seeded here, so the build is deterministic), and per-file
peak normalisation. Files that cannot be used are skipped with a warning.
"""

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from wavegan_jax.data import common
from wavegan_jax.data import media


@dataclasses.dataclass(eq=False)
class AudioFolderConfig(tfds.core.BuilderConfig):
  """How files become slices.

  Attributes:
    sample_rate: resample every file to this rate (Hz).
    num_channels: 1 mixes down to mono; 2 duplicates mono to stereo.
    slice_len: samples per example.
    first_slice_only: keep only each file's first slice.
    pad_end: zero-pad the last slice instead of dropping it (a file shorter
      than slice_len then still gives one slice).
    overlap_ratio: overlap of consecutive slices, in [0, 1).
    random_offset: start slicing at a random offset in [0, slice_len), drawn
      from (seed, file name).
    normalize: divide each file by its peak absolute sample.
    split_by: 'hash', 'fsdd_takes' or 'none' (see common.split_of).
    test_fraction: share of files in the test split when split_by='hash'.
    seed: seed of the random offsets.
  """
  sample_rate: int = 16000
  num_channels: int = 1
  slice_len: int = 16384
  first_slice_only: bool = False
  pad_end: bool = False
  overlap_ratio: float = 0.0
  random_offset: bool = False
  normalize: bool = False
  split_by: str = "hash"
  test_fraction: float = 0.1
  seed: int = 0


def slice_audio(samples: np.ndarray, slice_len: int, *, overlap_ratio=0.0,
                pad_end=False, first_slice_only=False,
                offset=0) -> np.ndarray:
  """Cuts [num_samples, channels] audio into [num_slices, slice_len, channels].

  Follows WaveGAN's loader (tf.signal.frame): hop = slice_len * (1 - overlap);
  with pad_end there are ceil(n / hop) slices, the last zero-padded, else
  only the slices that fit whole.

  Args:
    samples: float array [num_samples, channels].
    slice_len: samples per slice.
    overlap_ratio: overlap of consecutive slices in [0, 1).
    pad_end: whether to pad (rather than drop) a partial last slice.
    first_slice_only: keep at most one slice.
    offset: samples dropped from the start first.

  Returns:
    float32 array [num_slices, slice_len, channels]; num_slices may be 0.
  """
  if not 0 <= overlap_ratio < 1:
    raise ValueError(f"overlap_ratio must be in [0, 1), got {overlap_ratio}")
  hop = max(1, int(round(slice_len * (1.0 - overlap_ratio))))
  samples = samples[offset:]
  length = len(samples)
  if pad_end:
    count = -(-length // hop)
  else:
    count = 1 + (length - slice_len) // hop if length >= slice_len else 0
  if first_slice_only:
    count = min(count, 1)
  padded_len = max(length, (count - 1) * hop + slice_len if count else 0)
  padded = np.zeros((padded_len, samples.shape[1]), np.float32)
  padded[:length] = samples
  return np.stack([padded[i * hop:i * hop + slice_len] for i in range(count)]
                  ) if count else np.zeros((0, slice_len, samples.shape[1]),
                                           np.float32)


class AudioFolder(tfds.core.GeneratorBasedBuilder):
  """Slices of a user's folder of audio files (the manual dir)."""

  # TFDS's own lookup of this file needs `importlib_resources`; give the path.
  code_path = pathlib.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      AudioFolderConfig(name="default"),
      # Unconditional WaveGAN on FSDD with its official takes split.
      AudioFolderConfig(name="fsdd", sample_rate=8000, slice_len=8192,
                        first_slice_only=True, pad_end=True,
                        split_by="fsdd_takes"),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "The folder of audio files (wav, flac, ogg, mp3), searched recursively.")

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(
                shape=(config.slice_len, config.num_channels),
                dtype=np.float32),
            "source_id": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    config = self.builder_config
    folder, splits = common.folder_split_files(
        dl_manager, "audio files", media.AUDIO_EXTENSIONS,
        config.split_by, config.test_fraction)
    return {split: self._generate_examples(folder, paths)
            for split, paths in splits.items()}

  def _slices(self, folder, path):
    config = self.builder_config
    name = path.relative_to(folder).as_posix()
    common.check_regular_file(path)
    samples = media.load_audio(path, config.sample_rate,
                               num_channels=config.num_channels)
    if config.normalize:
      samples = samples / np.abs(samples).max()
    offset = 0
    if config.random_offset:
      offset = int(common.stable_rng(config.seed, "offset", name).integers(
          0, config.slice_len))
    slices = slice_audio(samples, config.slice_len,
                         overlap_ratio=config.overlap_ratio,
                         pad_end=config.pad_end,
                         first_slice_only=config.first_slice_only,
                         offset=offset)
    if not len(slices):
      raise media.MediaError(
          path, "too_short", f"{len(samples)} samples after offset {offset} "
          f"give no slice of {config.slice_len} (pad_end=False)")
    return name, slices

  def _generate_examples(self, folder, paths):
    skips = common.SkipLog()
    kept = 0
    for path in paths:
      loaded = skips.load(lambda path=path: self._slices(folder, path))
      if loaded is None:
        continue
      kept += 1
      name, slices = loaded
      for index, audio_slice in enumerate(slices):
        yield f"{name}:{index}", {"audio": audio_slice, "source_id": name}
    skips.summarize(folder, kept)
