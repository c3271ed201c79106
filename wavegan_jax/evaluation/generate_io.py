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
# The longest side of an --output_video: larger inputs are shrunk to it as
# they are decoded (1080p: 1280x720).
MAX_OUTPUT_SIDE = 1280


def check_output_path(path: PathLike, extensions: tuple[str, ...]) -> None:
  """GenerateError unless `path` ends in one of `extensions` and is not a
  folder."""
  if pathlib.Path(path).suffix.lower() not in extensions:
    raise GenerateError(path, "unsupported output type; use one of "
                        + ", ".join(extensions))
  if pathlib.Path(path).is_dir():
    raise GenerateError(path, "is a folder; give a file name")


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
  try:
    soundfile.write(str(path), np.clip(waveform, -1.0, 1.0), sample_rate,
                    subtype="PCM_16")
  except soundfile.LibsndfileError as error:  # Not an OSError.
    raise GenerateError(path, f"cannot be written ({error})") from error
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
  try:
    _encode(path, frames, fps, audio, sample_rate)
  except av.FFmpegError as error:
    raise GenerateError(path, f"cannot be written ({error})") from error
  return path


def _encode(path, frames, fps, audio, sample_rate):
  """write_video_with_audio's encoding (see there)."""
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


def video_for_output(path: PathLike, clip: "generate_lib.ClipSpec"
                     ) -> np.ndarray:
  """The input video in colour at its own size, timed like the model's clip.

  Returns:
    uint8 [clip.num_frames, height, width, 3]: the frames the model saw
    (resampled to clip.fps, cropped to the clip, padded with black), the
    longer side at most MAX_OUTPUT_SIDE. Only the clip's seconds of the
    input are decoded.
  """
  try:
    frames = media.load_video(
        path, fps=float(clip.fps), channels=3,
        max_seconds=generate_lib.decode_seconds(clip),
        max_side=MAX_OUTPUT_SIDE)
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
  paths are taken relative to the manifest's folder. Rows are read by the
  csv module in strict mode, one at a time, so that a row it rejects (a
  stray quote, a NUL byte), a row with more or fewer fields than the
  header, or one with an empty field is a problem of that row only.

  Args:
    path: the CSV file (with a header line).

  Returns:
    (rows, problems): the usable rows, and (row number, what is wrong) for
    the others.

  Raises:
    GenerateError: the file is empty, not text, or its header is not CSV
      or lacks a column.
    FileNotFoundError: no such file.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  rows, problems = [], []
  try:
    with open(path, newline="", encoding="utf-8") as file:
      reader = csv.reader(file, strict=True)
      try:
        header = [name.strip() for name in next(reader, [])]
      except csv.Error as error:
        raise GenerateError(path, f"header line is not CSV ({error})"
                            ) from error
      missing = [c for c in MANIFEST_COLUMNS if c not in header]
      if missing:
        raise GenerateError(
            path, f"missing column(s) {', '.join(missing)}; a manifest needs "
            "a header line video,reference,output")
      index = 0
      while True:
        try:
          values = next(reader)
        except StopIteration:
          break
        except csv.Error as error:
          problems.append((reader.line_num, f"not valid CSV ({error})"))
          index += 1
          continue
        if not values:  # A blank line.
          continue
        row, index = _manifest_row(path.parent, header, values,
                                   reader.line_num, index), index + 1
        (rows if isinstance(row, ManifestRow) else problems).append(row)
  except UnicodeDecodeError as error:
    raise GenerateError(path, f"not a UTF-8 text file ({error})") from error
  if not rows and not problems:
    raise GenerateError(path, "no rows below the header")
  return rows, problems


def _manifest_row(folder: pathlib.Path, header: list[str], values: list[str],
                  line_number: int, index: int
                 ) -> ManifestRow | tuple[int, str]:
  """One data row as a ManifestRow, or (row number, what is wrong)."""
  if len(values) != len(header):
    return line_number, (f"{len(values)} fields where the header has "
                         f"{len(header)} ({', '.join(header)})")
  line = {key: value.strip() for key, value in zip(header, values)}
  empty = [c for c in MANIFEST_COLUMNS if not line.get(c)]
  if empty:
    return line_number, f"empty {', '.join(empty)}"
  output_video = line.get("output_video")
  return ManifestRow(
      row=line_number, index=index, video=folder / line["video"],
      reference=folder / line["reference"], output=folder / line["output"],
      output_video=folder / output_video if output_video else None)


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
  """Whether two paths name one file (links and relative parts resolved)."""
  try:
    return a.exists() and b.exists() and a.samefile(b)
  except OSError:
    return False


def check_not_an_input(output: PathLike | None,
                       inputs: dict[str, PathLike | None]) -> None:
  """GenerateError if `output` resolves to one of `inputs` (or its folder).

  Args:
    output: a path the command will write (None: nothing to check).
    inputs: {flag or column name: path the command reads}.
  """
  if output is None:
    return
  target = pathlib.Path(output)
  for name, source in inputs.items():
    if source is None:
      continue
    source = pathlib.Path(source)
    if (target.resolve() == source.resolve() or _same_file(target, source)
        or source.resolve() in target.resolve().parents):
      raise GenerateError(output, f"is the input {name} ({source}); refusing "
                          "to overwrite it: choose another output path")
