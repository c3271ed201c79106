"""Decoding audio and video files into numpy arrays, with validation.

Every loader here either returns a clean array or raises `MediaError`, whose
`reason` is one of `REASONS`, so that callers (the folder builders, the
generate command) can skip or report bad files uniformly.

Audio comes back as float32 `[num_samples, num_channels]` in [-1, 1]; video as
uint8 `[num_frames, height, width, channels]`.
"""

import os
import pathlib
from typing import Sequence

import av
import numpy as np
from PIL import Image
from PIL import ImageSequence
import soundfile
import soxr

from wavegan_jax import errors

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".gif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# The fixed set of reasons a file can be rejected for.
REASONS = errors.MEDIA_REASONS

PathLike = str | os.PathLike
MediaError = errors.MediaError


def _check_file(path: PathLike) -> pathlib.Path:
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such file")
  if path.is_file() and path.stat().st_size == 0:
    raise MediaError(path, "empty", "0 bytes")
  return path


def _decode_audio_with_av(path: pathlib.Path) -> tuple[np.ndarray, int]:
  """Decodes the first audio stream of any container FFmpeg reads."""
  try:
    with av.open(str(path)) as container:
      if not container.streams.audio:
        raise MediaError(path, "no_audio", "no audio stream")
      stream = container.streams.audio[0]
      rate = stream.rate
      # Planar float keeps each channel in its own row: [channels, samples].
      resampler = av.AudioResampler(format="fltp", layout=stream.layout,
                                    rate=rate)
      chunks = []
      for frame in container.decode(stream):
        for converted in resampler.resample(frame):
          chunks.append(converted.to_ndarray())
      for converted in resampler.resample(None):
        chunks.append(converted.to_ndarray())
  except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
    if isinstance(error, FileNotFoundError):
      raise
    raise MediaError(path, "undecodable", str(error).strip()) from error
  if not chunks:
    raise MediaError(path, "empty", "no audio samples")
  return np.concatenate(chunks, axis=1).T.astype(np.float32), rate


def _check_wav_length(path: pathlib.Path) -> None:
  """Rejects a RIFF/WAVE file whose data chunk is cut short.

  libsndfile silently reads what is left of a truncated file; a file that
  lost part of its samples is broken, not short.
  """
  with open(path, "rb") as file:
    header = file.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
      return
    while True:
      chunk = file.read(8)
      if len(chunk) < 8:
        return
      size = int.from_bytes(chunk[4:], "little")
      if chunk[:4] == b"data":
        held = path.stat().st_size - file.tell()
        # 0 and 0xFFFFFFFF mark streams written without a final size.
        if 0 < size < 0xFFFFFFFF and held < size:
          raise MediaError(path, "undecodable",
                           f"truncated: data chunk declares {size} bytes, "
                           f"file holds {held}")
        return
      file.seek(size + size % 2, os.SEEK_CUR)


def read_audio(path: PathLike) -> tuple[np.ndarray, int]:
  """Reads an audio file at its own sample rate.

  Tries libsndfile (wav, flac, ogg, and mp3 where libsndfile has it) and falls
  back to FFmpeg through PyAV for anything else.

  Args:
    path: the audio file.

  Returns:
    (float32 array [num_samples, num_channels], sample rate in Hz).

  Raises:
    MediaError: 'empty' or 'undecodable'.
  """
  path = _check_file(path)
  if path.is_dir():
    raise MediaError(path, "undecodable", "a folder, not an audio file")
  _check_wav_length(path)
  try:
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
  except (soundfile.LibsndfileError, RuntimeError, TypeError):
    samples, rate = _decode_audio_with_av(path)
  if samples.size == 0:
    raise MediaError(path, "empty", "no audio samples")
  return samples, rate


def _set_channels(samples: np.ndarray, num_channels: int | None) -> np.ndarray:
  """Mixes down to mono, or repeats channels cyclically to num_channels."""
  have = samples.shape[1]
  if num_channels is None or num_channels == have:
    return samples
  if num_channels == 1:
    return samples.mean(axis=1, keepdims=True)
  return samples[:, np.arange(num_channels) % have]


def finish_audio(samples: np.ndarray, rate: int, path: PathLike, *,
                 sample_rate: int | None = None,
                 num_channels: int | None = None,
                 min_samples: int = 1,
                 allow_silent: bool = False) -> np.ndarray:
  """Validates decoded audio, then fixes its channels and sample rate.

  Args:
    samples: float array [num_samples, num_channels] as decoded.
    rate: its sample rate in Hz.
    path: the file it came from, for error messages.
    sample_rate: the wanted rate (None keeps `rate`).
    num_channels: 1 mixes down, more repeats channels; None keeps them.
    min_samples: fewer samples than this (after resampling) is 'too_short'.
    allow_silent: whether an all-zero signal is acceptable.

  Returns:
    float32 array [num_samples, num_channels].

  Raises:
    MediaError: 'non_finite', 'too_short' or 'silent'.
  """
  if not np.all(np.isfinite(samples)):
    bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
    raise MediaError(path, "non_finite", f"{bad} NaN/inf samples")
  samples = _set_channels(np.asarray(samples, np.float32), num_channels)
  if sample_rate is not None and sample_rate != rate:
    samples = soxr.resample(samples, rate, sample_rate, quality="HQ")
    samples = np.asarray(samples, np.float32).reshape(-1, samples.shape[-1])
  if samples.shape[0] < min_samples:
    raise MediaError(path, "too_short",
                     f"{samples.shape[0]} samples, need {min_samples}")
  if not allow_silent and not np.any(samples):
    raise MediaError(path, "silent", "all samples are zero")
  return samples


def load_audio(path: PathLike, sample_rate: int | None = None, *,
               num_channels: int | None = 1, min_samples: int = 1,
               allow_silent: bool = False) -> np.ndarray:
  """Loads an audio file as float32 [num_samples, num_channels].

  Args:
    path: wav, flac, ogg, mp3 (or anything FFmpeg decodes).
    sample_rate: resample to this rate in Hz (soxr); None keeps the file's.
    num_channels: 1 mixes down to mono, 2 duplicates mono to stereo (or keeps
      the first two); None keeps the file's channels.
    min_samples: shorter audio (after resampling) raises 'too_short'.
    allow_silent: whether an all-zero file is acceptable.

  Returns:
    float32 array [num_samples, num_channels].

  Raises:
    MediaError: with reason in REASONS.
  """
  samples, rate = read_audio(path)
  return finish_audio(samples, rate, path, sample_rate=sample_rate,
                      num_channels=num_channels, min_samples=min_samples,
                      allow_silent=allow_silent)


def load_video_audio(path: PathLike, sample_rate: int | None = None, *,
                     num_channels: int | None = 1, min_samples: int = 1,
                     allow_silent: bool = False) -> np.ndarray:
  """Loads the audio track of a video file; arguments as in `load_audio`.

  Returns:
    float32 array [num_samples, num_channels].

  Raises:
    MediaError: 'no_audio' when the file has no audio stream, else as
      `load_audio`.
  """
  path = _check_file(path)
  samples, rate = _decode_audio_with_av(path)
  return finish_audio(samples, rate, path, sample_rate=sample_rate,
                      num_channels=num_channels, min_samples=min_samples,
                      allow_silent=allow_silent)


def _bounded_size(width: int, height: int, max_side: int | None
                  ) -> Sequence[int] | None:
  """(height, width) scaled so the longer side is at most `max_side` (even
  sides, the aspect ratio kept), or None when it already is."""
  if max_side is None or max(width, height) <= max_side:
    return None
  scale = max_side / max(width, height)
  return (max(2, 2 * round(height * scale / 2)),
          max(2, 2 * round(width * scale / 2)))


def _past(times: list[float], time: float, max_seconds: float | None) -> bool:
  """Whether a frame at `time` starts after the first `max_seconds`."""
  return (max_seconds is not None and bool(times) and
          time - times[0] >= max_seconds)


def _to_array(image: Image.Image, size: Sequence[int] | None,
              channels: int, max_side: int | None = None) -> np.ndarray:
  image = image.convert("L" if channels == 1 else "RGB")
  if size is None:
    size = _bounded_size(image.width, image.height, max_side)
  if size is not None:
    height, width = size
    image = image.resize((width, height), Image.Resampling.BILINEAR)
  array = np.asarray(image, np.uint8)
  return array[..., None] if channels == 1 else array


def _retime(frames: list[np.ndarray], times: list[float],
            fps: float | None) -> np.ndarray:
  """Resamples frames shown at `times` (seconds) to a constant `fps`.

  Output frame i shows the last source frame that started at or before i/fps.
  """
  if fps is None:
    return np.stack(frames)
  times = np.asarray(times, np.float64) - times[0]
  step = np.diff(times).mean() if len(times) > 1 else 1.0 / fps
  duration = times[-1] + step
  count = max(1, int(np.floor(duration * fps + 1e-6)))
  wanted = np.arange(count) / fps
  picks = np.searchsorted(times, wanted + 1e-6, side="right") - 1
  return np.stack([frames[i] for i in np.clip(picks, 0, len(frames) - 1)])


def _decode_video_with_av(path, size, channels, max_seconds=None,
                          max_side=None):
  frames, times = [], []
  try:
    with av.open(str(path)) as container:
      if not container.streams.video:
        raise MediaError(path, "no_frames", "no video stream")
      stream = container.streams.video[0]
      # Decoding stops at the first frame past max_seconds, and each frame
      # is shrunk as soon as it is decoded: memory is the kept frames at
      # their output size, whatever the file's length and resolution.
      for index, frame in enumerate(container.decode(stream)):
        rate = float(stream.average_rate or 25)
        time = frame.time if frame.time is not None else index / rate
        if _past(times, time, max_seconds):
          break
        times.append(time)
        frames.append(_to_array(frame.to_image(), size, channels, max_side))
  except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
    if isinstance(error, FileNotFoundError):
      raise
    raise MediaError(path, "undecodable", str(error).strip()) from error
  return frames, times


def _decode_gif(path, size, channels, max_seconds=None, max_side=None):
  frames, times, clock = [], [], 0.0
  try:
    with Image.open(path) as image:
      for frame in ImageSequence.Iterator(image):
        if _past(times, clock, max_seconds):
          break
        frames.append(_to_array(frame, size, channels, max_side))
        times.append(clock)
        clock += frame.info.get("duration", 100) / 1000.0
  except (OSError, SyntaxError) as error:
    raise MediaError(path, "undecodable", str(error)) from error
  return frames, times


def _decode_frame_folder(path, size, channels, fps, max_seconds=None,
                         max_side=None):
  files = sorted(p for p in path.iterdir()
                 if p.suffix.lower() in IMAGE_EXTENSIONS)
  if max_seconds is not None:
    files = files[:int(np.ceil(max_seconds * (fps or 1.0))) + 1]
  frames = []
  for file in files:
    try:
      with Image.open(file) as image:
        frames.append(_to_array(image, size, channels, max_side))
    except OSError as error:
      raise MediaError(file, "undecodable", str(error)) from error
  # A folder has no clock: its images are taken to be at the wanted rate.
  return frames, [i / (fps or 1.0) for i in range(len(frames))]


def load_video(path: PathLike, fps: float | None = None,
               size: int | Sequence[int] | None = None,
               channels: int = 1, max_seconds: float | None = None,
               max_side: int | None = None) -> np.ndarray:
  """Loads a video as uint8 [num_frames, height, width, channels].

  With `max_seconds` only the frames of the first max_seconds are decoded
  (and one more, to time the last), so memory does not grow with the
  file's length; with `max_side` (and no `size`) frames are shrunk, keeping
  their aspect ratio, as they are decoded.

  Args:
    path: a video file (mp4, mov, webm, avi, mkv: PyAV), an animated GIF, or a
      folder of image frames (png, jpg, bmp; sorted by name, one per frame).
    fps: resample to this frame rate; None keeps every source frame.
    size: output height and width (an int for square frames); None keeps the
      source size.
    channels: 1 for grayscale, 3 for RGB.
    max_seconds: decode only this much of the start (None: all).
    max_side: with size None, the longest output side (None: the source's).

  Returns:
    uint8 array [num_frames, height, width, channels].

  Raises:
    MediaError: 'empty', 'undecodable' or 'no_frames'.
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels}")
  if isinstance(size, int):
    size = (size, size)
  path = _check_file(path)
  bounds = dict(max_seconds=max_seconds, max_side=max_side)
  if path.is_dir():
    frames, times = _decode_frame_folder(path, size, channels, fps, **bounds)
  elif path.suffix.lower() == ".gif":
    frames, times = _decode_gif(path, size, channels, **bounds)
  else:
    frames, times = _decode_video_with_av(path, size, channels, **bounds)
  if not frames:
    raise MediaError(path, "no_frames", "no decodable video frames")
  return _retime(frames, times, fps)


def video_seconds(path: PathLike, fps: float | None = None) -> float | None:
  """A video's length in seconds from its headers (frames not decoded where
  the container says), or None when unknown. A frame folder's is its image
  count at `fps`."""
  path = pathlib.Path(path)
  try:
    if path.is_dir():
      count = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())
      return count / fps if fps else None
    if path.suffix.lower() == ".gif":
      with Image.open(path) as image:
        return sum(frame.info.get("duration", 100)
                   for frame in ImageSequence.Iterator(image)) / 1000.0
    with av.open(str(path)) as container:
      stream = container.streams.video[0]
      if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
      if container.duration is not None:
        return container.duration / av.time_base
  except (av.FFmpegError, OSError, IndexError):
    return None
  return None
