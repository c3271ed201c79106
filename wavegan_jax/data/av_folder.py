"""TFDS builder `av_folder`: clips of a user's own videos with their audio.

The folder (passed as the manual dir, searched recursively) holds video files
(mp4, mov, webm, avi, mkv, gif) whose audio is either their own audio track or
an audio file of the same stem beside them (wav, flac, ogg, mp3; it wins over
the track). Each source is resampled to the config's audio rate and frame
rate (num_frames per num_samples) and cut into consecutive clips; the
features are those of `av_digits` that apply: video, target, reference,
target_id, reference_id.

All usable sources of a split are held in memory while it is written (at the
clip geometry, e.g. 32x32 grayscale and 8 kHz: about 0.2 MB per second).
"""

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from wavegan_jax.data import av_digits
from wavegan_jax.data import common
from wavegan_jax.data import media


@dataclasses.dataclass(eq=False)
class AvFolderConfig(tfds.core.BuilderConfig):
  """Clip geometry and split of a video folder.

  Attributes:
    sample_rate: audio rate in Hz.
    num_samples: clip length in samples.
    num_frames: video frames per clip (frame rate = num_frames * sample_rate
      / num_samples).
    frame_size: frame height and width in pixels.
    channels: 1 (grayscale) or 3 (RGB).
    split_by: 'hash' or 'none' (see common.split_of).
    test_fraction: share of source files in test when split_by='hash'.
    seed: seed of the reference choices.
  """
  sample_rate: int = 8000
  num_samples: int = 8192
  num_frames: int = 32
  frame_size: int = 32
  channels: int = 1
  split_by: str = "hash"
  test_fraction: float = 0.1
  seed: int = 0


@dataclasses.dataclass
class _Source:
  name: str
  audio: np.ndarray  # int16 [num_clips * num_samples]
  video: np.ndarray  # uint8 [num_clips * num_frames, H, W, C]
  num_clips: int


class AvFolder(tfds.core.GeneratorBasedBuilder):
  """Clips of the user's videos (the manual dir) with their sound."""

  # TFDS's own lookup of this file needs `importlib_resources`; give the path.
  code_path = pathlib.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [AvFolderConfig(name="default")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "The folder of videos (mp4, mov, webm, avi, mkv, gif) with an audio "
      "track or an audio file of the same stem (wav, flac, ogg, mp3).")

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    size = config.frame_size
    zlib = tfds.features.Encoding.ZLIB
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "video": tfds.features.Tensor(
                shape=(config.num_frames, size, size, config.channels),
                dtype=np.uint8, encoding=zlib),
            "target": tfds.features.Tensor(
                shape=(config.num_samples,), dtype=np.int16, encoding=zlib),
            "reference": tfds.features.Tensor(
                shape=(config.num_samples,), dtype=np.int16, encoding=zlib),
            "target_id": tfds.features.Text(),
            "reference_id": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    config = self.builder_config
    folder, splits = common.folder_split_files(
        dl_manager, "video files", media.VIDEO_EXTENSIONS,
        config.split_by, config.test_fraction)
    return {split: self._generate_examples(folder, paths)
            for split, paths in splits.items()}

  def _load_source(self, folder: pathlib.Path, path: pathlib.Path) -> _Source:
    config = self.builder_config
    common.check_regular_file(path)
    side_audio = [path.with_suffix(ext) for ext in media.AUDIO_EXTENSIONS
                  if path.with_suffix(ext).is_file()]
    # Half a clip is the least worth keeping; the rest of it is zero-padded.
    min_samples = config.num_samples // 2
    video = media.load_video(
        path, fps=config.num_frames * config.sample_rate / config.num_samples,
        size=config.frame_size, channels=config.channels)
    if side_audio:
      audio = media.load_audio(side_audio[0], config.sample_rate,
                               num_channels=1, min_samples=min_samples)
    else:
      audio = media.load_video_audio(path, config.sample_rate, num_channels=1,
                                     min_samples=min_samples)
    num_clips = len(audio) // config.num_samples
    if len(audio) % config.num_samples >= min_samples:
      num_clips += 1
    audio_len = num_clips * config.num_samples
    video_len = num_clips * config.num_frames
    padded_video = np.zeros((video_len,) + video.shape[1:], np.uint8)
    padded_video[:min(len(video), video_len)] = video[:video_len]
    return _Source(
        name=path.relative_to(folder).as_posix(),
        audio=av_digits.place(av_digits.to_int16(audio[:, 0]), 0, audio_len),
        video=padded_video, num_clips=num_clips)

  def _generate_examples(self, folder, paths):
    config = self.builder_config
    skips = common.SkipLog()
    sources = []
    for path in paths:
      source = skips.load(lambda path=path: self._load_source(folder, path))
      if source is not None:
        sources.append(source)
    skips.summarize(folder, len(sources))
    for index, source in enumerate(sources):
      for clip in range(source.num_clips):
        rng = common.stable_rng(config.seed, source.name, clip)
        reference_source, reference_clip = self._pick_reference(
            rng, sources, index, clip)
        yield f"{source.name}:{clip}", {
            "video": self._cut(source.video, clip, config.num_frames),
            "target": self._cut(source.audio, clip, config.num_samples),
            "reference": self._cut(reference_source.audio, reference_clip,
                                   config.num_samples),
            "target_id": f"{source.name}:{clip}",
            "reference_id": f"{reference_source.name}:{reference_clip}",
        }

  @staticmethod
  def _cut(array: np.ndarray, clip: int, length: int) -> np.ndarray:
    return array[clip * length:(clip + 1) * length]

  @staticmethod
  def _pick_reference(rng, sources, index, clip):
    """Another clip of the same source, else a clip of another source.

    With a single one-clip source there is nothing else: the clip is its own
    reference.
    """
    source = sources[index]
    if source.num_clips > 1:
      others = [c for c in range(source.num_clips) if c != clip]
      return source, int(rng.choice(others))
    if len(sources) > 1:
      other = sources[int(rng.choice(
          [i for i in range(len(sources)) if i != index]))]
      return other, int(rng.integers(0, other.num_clips))
    return source, clip
