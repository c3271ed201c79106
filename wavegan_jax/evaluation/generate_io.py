"""Files of the generate command: wav and muxed video output, CSV manifests.

Decoding lives in wavegan_jax/data/media.py; this module writes what the
generator made: PCM-16 audio (soundfile) and a video with the generated
audio track (PyAV: H.264 where the bundled FFmpeg has libx264, else MPEG-4
Part 2, with AAC audio).
"""

import csv
import dataclasses
import fractions
import pathlib

import av
import numpy as np
import soundfile

from wavegan_jax.data import media
from wavegan_jax.evaluation import generate as generate_lib

PathLike = media.PathLike
GenerateError = generate_lib.GenerateError
AUDIO_OUTPUT_EXTENSIONS = (".wav", ".flac")
VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".mov", ".mkv")
MANIFEST_COLUMNS = ("video", "reference", "output")


def check_output_path(path: PathLike, extensions: tuple[str, ...]) -> None:
  """GenerateError unless `path` ends in one of `extensions`."""
  if pathlib.Path(path).suffix.lower() not in extensions:
    raise GenerateError(path, "unsupported output type; use one of "
                        + ", ".join(extensions))


def write_audio(path: PathLike, waveform: np.ndarray,
                sample_rate: int) -> pathlib.Path:
  """Writes float audio in [-1, 1] as PCM-16 (values beyond are clipped).

  Args:
    path: .wav or .flac file; its folder is created if needed.
    waveform: float [num_samples] or [num_samples, num_channels].
    sample_rate: Hz.

  Returns:
    The path written.
  """
  path = pathlib.Path(path)
  check_output_path(path, AUDIO_OUTPUT_EXTENSIONS)
  path.parent.mkdir(parents=True, exist_ok=True)
  soundfile.write(str(path), np.clip(waveform, -1.0, 1.0), sample_rate,
                  subtype="PCM_16")
  return path


def _video_codec() -> str:
  """libx264 where PyAV's FFmpeg has it, else its built-in MPEG-4 encoder."""
  try:
    av.codec.Codec("libx264", "w")
    return "libx264"
  except (av.FFmpegError, ValueError):
    return "mpeg4"


def _even_size(frames: np.ndarray) -> np.ndarray:
  """Repeats the last row/column where needed: yuv420p wants even sizes."""
  height, width = frames.shape[1:3]
  return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)),
                mode="edge")


def write_video_with_audio(path: PathLike, frames: np.ndarray,
                           fps: fractions.Fraction, waveform: np.ndarray,
                           sample_rate: int) -> pathlib.Path:
  """Encodes RGB frames and a mono waveform into one video file.

  Args:
    path: .mp4, .mov or .mkv; its folder is created if needed.
    frames: uint8 [num_frames, height, width, 3] (1 channel is taken as
      grayscale).
    fps: the frame rate, exact (e.g. Fraction(125, 4)).
    waveform: float [num_samples] in [-1, 1].
    sample_rate: Hz of the waveform.

  Returns:
    The path written.
  """
  path = pathlib.Path(path)
  check_output_path(path, VIDEO_OUTPUT_EXTENSIONS)
  path.parent.mkdir(parents=True, exist_ok=True)
  if frames.shape[-1] == 1:
    frames = np.repeat(frames, 3, axis=-1)
  frames = _even_size(np.ascontiguousarray(frames, np.uint8))
  audio = np.clip(np.asarray(waveform, np.float32), -1.0, 1.0)[None]
  with av.open(str(path), "w") as container:
    video_stream = container.add_stream(_video_codec(), rate=fps)
    video_stream.height, video_stream.width = frames.shape[1:3]
    video_stream.pix_fmt = "yuv420p"
    audio_stream = container.add_stream("aac", rate=sample_rate)
    audio_stream.layout = "mono"
    for image in frames:
      frame = av.VideoFrame.from_ndarray(image, format="rgb24")
      container.mux(video_stream.encode(frame))
    container.mux(video_stream.encode(None))
    audio_frame = av.AudioFrame.from_ndarray(audio, format="flt",
                                             layout="mono")
    audio_frame.sample_rate = sample_rate
    # An explicit start lets the encoder date its priming samples before 0
    # (an edit list), so the audio lasts as long as the waveform.
    audio_frame.pts = 0
    audio_frame.time_base = fractions.Fraction(1, sample_rate)
    container.mux(audio_stream.encode(audio_frame))
    container.mux(audio_stream.encode(None))
  return path


def video_for_output(path: PathLike, clip: "generate_lib.ClipSpec"
                     ) -> np.ndarray:
  """The input video in colour at its own size, timed like the model's clip.

  Returns:
    uint8 [clip.num_frames, height, width, 3]: the frames the model saw
    (resampled to clip.fps, cropped to the clip, padded with black).
  """
  try:
    frames = media.load_video(path, fps=float(clip.fps), channels=3)
  except ValueError as error:
    if isinstance(error, media.MediaError):
      raise
    # np.stack of a frame folder whose images differ in size.
    raise GenerateError(path, f"frames of different sizes ({error})"
                        ) from error
  return generate_lib.fit_length(frames, clip.num_frames)


@dataclasses.dataclass(frozen=True)
class ManifestRow:
  """One line of a manifest: paths resolved against the manifest's folder.

  Attributes:
    row: its row number as a spreadsheet shows it (the header is row 1).
    index: 0 for the first data row, 1 for the next, ...
  """
  row: int
  index: int
  video: pathlib.Path
  reference: pathlib.Path
  output: pathlib.Path
  output_video: pathlib.Path | None = None


def read_manifest(path: PathLike) -> tuple[list[ManifestRow],
                                           list[tuple[int, str]]]:
  """Reads a CSV manifest with columns video, reference, output.

  An optional column output_video asks for a muxed video as well. Relative
  paths are taken relative to the manifest's folder.

  Args:
    path: the CSV file (with a header line).

  Returns:
    (rows, problems): the usable rows, and (row number, what is wrong) for
    rows with an empty field.

  Raises:
    GenerateError: the file is empty, not CSV, or lacks a column.
    FileNotFoundError: no such file.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  try:
    with open(path, newline="", encoding="utf-8") as file:
      reader = csv.DictReader(file)
      fields = [name.strip() for name in (reader.fieldnames or [])]
      lines = list(reader)
  except (UnicodeDecodeError, csv.Error) as error:
    raise GenerateError(path, f"not a CSV file ({error})") from error
  missing = [c for c in MANIFEST_COLUMNS if c not in fields]
  if missing:
    raise GenerateError(path, f"missing column(s) {', '.join(missing)}; a "
                        "manifest needs a header line video,reference,output")
  folder = path.parent
  rows, problems = [], []
  for index, line in enumerate(lines):
    line = {(k or "").strip(): (v or "").strip() for k, v in line.items()}
    row = index + 2
    empty = [c for c in MANIFEST_COLUMNS if not line.get(c)]
    if empty:
      problems.append((row, f"empty {', '.join(empty)}"))
      continue
    output_video = line.get("output_video")
    rows.append(ManifestRow(
        row=row, index=index, video=folder / line["video"],
        reference=folder / line["reference"], output=folder / line["output"],
        output_video=folder / output_video if output_video else None))
  if not rows and not problems:
    raise GenerateError(path, "no rows below the header")
  return rows, problems
