"""A robustness test set: AV-digits clips rendered in ways training never saw.

AV-digits trains on MNIST images, white on black, 32x32 frames at 31.25 fps
(32 frames per 1.024 s). Users bring other videos. `make_set` writes, from the
same raw sources (FSDD recordings, MNIST t10k), clips whose digit is drawn
in other ways (`KINDS`): printed fonts, other scales and positions, thicker
and thinner strokes, inverted and coloured frames, other frame sizes and
frame rates, and one kind combining several. Each clip is a real video file
(H.264 or MPEG-4 in .mp4, no audio track), a reference recording and the
real target, all written to disk, so an evaluation feeds them through the
same decoding as `launch/generate.py` (`wavegan_jax.evaluation.generate.
prepare_video`: retimed to the model's rate, grayscale, redrawn or resized).

Audio: FSDD's test takes (0-4), as the AV-digits test split. FSDD has six
speakers and the AV-digits train split holds takes 5-49 of every one of
them, so no speaker is held out of training: targets and references are
recordings the model never heard, by speakers it did hear. The reference is
another test take of the same speaker, of another digit (as in AV-digits).

Timing: a kind's video has `ceil(seconds x fps)` frames at its own rate; the
digit appears at a source frame drawn so that the recording fits, and stays
while it is audible (a +-2 px random walk in 32-px units, as AV-digits); the
target starts at that frame's time (`onset_seconds` in the manifest).

Layout of a set folder:
  set.json       what was made (seed, clips per kind, kinds, clip geometry).
  manifest.csv   one row per clip: video, reference, output (a path for the
                 generated wav, so `launch/generate.py --manifest` runs the
                 set as is), target, kind, digit, speaker, onset_seconds,
                 target_id, reference_id, source (MNIST image or font).
  clips/<kind>/<i>.mp4, <i>_reference.wav, <i>_target.wav
"""

import csv
import dataclasses
import fractions
import json
import math
import pathlib
from typing import Iterable, Optional, Sequence

import av
import matplotlib
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont
import scipy.ndimage
import soundfile

from wavegan_jax import errors
from wavegan_jax.data import av_digits
from wavegan_jax.data import common
from wavegan_jax.data import media

SET_VERSION = 1
SET_FILE = "set.json"
MANIFEST_FILE = "manifest.csv"
MANIFEST_COLUMNS = ("video", "reference", "output", "target", "kind",
                    "digit", "speaker", "onset_seconds", "target_id",
                    "reference_id", "source")
DEFAULT_CLIPS_PER_KIND = 30
# The clip of AV-digits' default config: 8192 samples at 8 kHz, 32 frames.
SAMPLE_RATE = av_digits.FSDD_SAMPLE_RATE
NUM_SAMPLES = 8192
DEFAULT_FPS = fractions.Fraction(32 * SAMPLE_RATE, NUM_SAMPLES)  # 31.25
# MNIST's 28x28 images span the whole 32x32 AV-digits frame.
GLYPH_SIZE = 28
# Printed digits are fitted, as MNIST's, into a 20x20 box centred by mass.
GLYPH_BOX = 20
# Fonts matplotlib ships (a dependency), so nothing is downloaded.
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "STIXGeneral.ttf",
         "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf")
# Luminance differences below this make a coloured digit nearly invisible
# once the frames are turned grey (ITU-R 601 weights, as PIL's "L").
MIN_COLOUR_CONTRAST = 0.35
LUMA = np.array([0.299, 0.587, 0.114])


RobustnessSetError = errors.RobustnessSetError


@dataclasses.dataclass(frozen=True)
class Kind:
  """One way of rendering the digit.

  Attributes:
    name: the kind's name (a folder and a report row).
    description: one line for reports.
    glyph: 'mnist' (t10k images 8000-9999) or 'font' (a printed digit).
    frame_size: frame height and width in pixels.
    fps: frames per second of the video.
    scale: (low, high) of the digit's size relative to AV-digits' (uniform).
    offset: (low, high) of the digit's displacement from the centre, as a
      fraction of the frame size, in a uniformly random direction.
    stroke: stroke width change in pixels of the 28-px glyph (+ thicker).
    colours: 'white_on_black', 'black_on_white' or 'random' (a foreground
      and background of luminance difference >= MIN_COLOUR_CONTRAST).
  """
  name: str
  description: str
  glyph: str = "mnist"
  frame_size: int = 32
  fps: fractions.Fraction = DEFAULT_FPS
  scale: tuple[float, float] = (1.0, 1.0)
  offset: tuple[float, float] = (0.0, 0.0)
  stroke: float = 0.0
  colours: str = "white_on_black"


KINDS = {kind.name: kind for kind in (
    Kind("mnist", "control: AV-digits' rendering (MNIST, 32x32, 31.25 fps)"),
    Kind("font", "printed digits in 10 fonts (DejaVu, STIX, Computer Modern)",
         glyph="font"),
    Kind("small", "MNIST at 0.45-0.65 of the size, anywhere in the frame",
         scale=(0.45, 0.65), offset=(0.0, 0.25)),
    Kind("large", "MNIST at 1.3-1.5 of the size (cropped at the edges)",
         scale=(1.3, 1.5)),
    Kind("offset", "MNIST moved 15-22% of the frame off the centre",
         offset=(0.15, 0.22)),
    Kind("thick", "MNIST strokes 2 px thicker (of 28)", stroke=2.0),
    Kind("thin", "MNIST strokes 1 px thinner (of 28)", stroke=-1.0),
    Kind("inverted", "black digit on a white frame", colours="black_on_white"),
    Kind("colour", "coloured digit on a coloured frame (RGB)",
         colours="random"),
    Kind("size64", "64x64 frames", frame_size=64),
    Kind("size48", "48x48 frames", frame_size=48),
    Kind("fps25", "25 fps", fps=fractions.Fraction(25)),
    Kind("fps60", "60 fps", fps=fractions.Fraction(60)),
    Kind("combined", "printed, 0.8-1.2 size, off centre, coloured, 64x64, "
         "25 fps", glyph="font", frame_size=64, fps=fractions.Fraction(25),
         scale=(0.8, 1.2), offset=(0.0, 0.12), colours="random"),
)}


# --- Glyphs ------------------------------------------------------------------


def font_path(name: str) -> pathlib.Path:
  """The path of one of matplotlib's bundled fonts."""
  path = pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
  if not path.is_file():
    raise RobustnessSetError(f"{path}: font not found in matplotlib's data")
  return path


def _centre_by_mass(image: np.ndarray, size: int) -> np.ndarray:
  """`image` pasted into a size x size canvas with its centre of mass at the
  centre (MNIST's normalisation)."""
  canvas = np.zeros((size, size), np.float32)
  cy, cx = scipy.ndimage.center_of_mass(image)
  top = int(round(size / 2 - cy))
  left = int(round(size / 2 - cx))
  height, width = image.shape
  canvas[max(top, 0):top + height, max(left, 0):left + width] = image[
      max(-top, 0):size - top, max(-left, 0):size - left]
  return canvas


def font_glyph(digit: int, font: str, oversample: int = 4) -> np.ndarray:
  """A printed digit as MNIST draws its digits: float32 [28, 28] in [0, 1].

  The digit is drawn large, fitted (aspect kept) into a 20x20 box, centred
  by its centre of mass in 28x28 and box-filtered down.

  Args:
    digit: 0-9.
    font: a file name of `FONTS` (any matplotlib bundled font).
    oversample: the drawing resolution over the final one.
  """
  big = GLYPH_SIZE * oversample
  pil_font = ImageFont.truetype(str(font_path(font)), size=big)
  canvas = Image.new("L", (2 * big, 2 * big), 0)
  ImageDraw.Draw(canvas).text((big // 2, big // 4), str(digit), fill=255,
                              font=pil_font)
  box = canvas.getbbox()
  if box is None:
    raise RobustnessSetError(f"{font}: draws nothing for the digit {digit}")
  ink = canvas.crop(box)
  fit = GLYPH_BOX * oversample / max(ink.size)
  ink = ink.resize((max(1, round(ink.size[0] * fit)),
                    max(1, round(ink.size[1] * fit))), Image.Resampling.LANCZOS)
  image = _centre_by_mass(np.asarray(ink, np.float32) / 255.0, big)
  image = Image.fromarray(np.clip(image, 0, 1)).resize(
      (GLYPH_SIZE, GLYPH_SIZE), Image.Resampling.BOX)
  return np.clip(np.asarray(image, np.float32), 0.0, 1.0)


def change_stroke(glyph: np.ndarray, pixels: float,
                  oversample: int = 4) -> np.ndarray:
  """Thickens (pixels > 0) or thins (< 0) the strokes of a [H, W] glyph.

  Grey dilation / erosion with a disk of radius |pixels| / 2 (a stroke
  gains or loses |pixels| in width), at `oversample` times the resolution.
  """
  if not pixels:
    return glyph
  height, width = glyph.shape
  big = Image.fromarray(glyph.astype(np.float32)).resize(
      (width * oversample, height * oversample), Image.Resampling.BILINEAR)
  radius = abs(pixels) * oversample / 2
  reach = int(math.ceil(radius))
  yy, xx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
  disk = yy ** 2 + xx ** 2 <= radius ** 2 + 1e-6
  morph = (scipy.ndimage.grey_dilation if pixels > 0 else
           scipy.ndimage.grey_erosion)
  changed = morph(np.asarray(big), footprint=disk)
  small = Image.fromarray(changed).resize((width, height),
                                          Image.Resampling.BOX)
  return np.clip(np.asarray(small, np.float32), 0.0, 1.0)


def place_glyph(glyph: np.ndarray, frame_size: int, scale: float,
                top_left_shift: tuple[int, int]) -> np.ndarray:
  """The glyph's alpha on a frame: float32 [frame_size, frame_size].

  At scale 1 the glyph spans the whole frame (AV-digits resizes MNIST's 28
  px to the frame size); it is resized to round(frame_size x scale),
  centred, moved by `top_left_shift` (dy, dx) pixels and cropped at the
  frame's edges.
  """
  side = max(1, int(round(frame_size * scale)))
  resized = np.asarray(Image.fromarray(glyph.astype(np.float32)).resize(
      (side, side), Image.Resampling.BILINEAR), np.float32)
  top = (frame_size - side) // 2 + int(top_left_shift[0])
  left = (frame_size - side) // 2 + int(top_left_shift[1])
  frame = np.zeros((frame_size, frame_size), np.float32)
  rows = slice(max(top, 0), min(top + side, frame_size))
  cols = slice(max(left, 0), min(left + side, frame_size))
  if rows.start < rows.stop and cols.start < cols.stop:
    frame[rows, cols] = resized[rows.start - top:rows.stop - top,
                                cols.start - left:cols.stop - left]
  return np.clip(frame, 0.0, 1.0)


def luminance(rgb) -> float:
  """ITU-R 601 luma of an RGB colour in [0, 255], in [0, 1]."""
  return float(np.dot(np.asarray(rgb, np.float64), LUMA) / 255.0)


def draw_colours(kind: Kind, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(foreground, background) RGB uint8 colours of a clip."""
  if kind.colours == "white_on_black":
    return np.full(3, 255, np.uint8), np.zeros(3, np.uint8)
  if kind.colours == "black_on_white":
    return np.zeros(3, np.uint8), np.full(3, 255, np.uint8)
  if kind.colours != "random":
    raise RobustnessSetError(f"kind {kind.name}: unknown colours "
                             f"{kind.colours!r}")
  while True:
    foreground, background = rng.integers(0, 256, (2, 3))
    if abs(luminance(foreground) - luminance(background)) >= (
        MIN_COLOUR_CONTRAST):
      return foreground.astype(np.uint8), background.astype(np.uint8)


# --- Clips -------------------------------------------------------------------


def num_video_frames(fps: fractions.Fraction,
                     seconds: fractions.Fraction) -> int:
  """Frames a video at `fps` needs to cover `seconds`."""
  return int(math.ceil(fps * seconds))


def render_clip(kind: Kind, glyph: np.ndarray, recording_samples: int,
                rng: np.random.Generator, *,
                sample_rate: int = SAMPLE_RATE,
                num_samples: int = NUM_SAMPLES) -> dict:
  """Frames and timing of one clip.

  Args:
    kind: how to render.
    glyph: float32 [28, 28] alpha of the digit (MNIST or printed).
    recording_samples: length of the target recording in samples.
    rng: every random choice of the clip.
    sample_rate: audio rate of the clip.
    num_samples: audio length of the clip.

  Returns:
    {'frames': uint8 [F, S, S, 3], 'fps': Fraction, 'onset_frame': int (a
    frame of this video), 'start_sample': int (where the target starts)}.
  """
  seconds = fractions.Fraction(num_samples, sample_rate)
  count = num_video_frames(kind.fps, seconds)
  size = kind.frame_size
  free = max(0.0, (num_samples - recording_samples) / sample_rate)
  onset_frame = int(rng.integers(0, int(math.floor(free * kind.fps)) + 1))
  start = int(round(onset_frame / kind.fps * sample_rate))
  audible = min(recording_samples, num_samples - start)
  end = min(count, onset_frame + int(math.ceil(
      fractions.Fraction(audible, sample_rate) * kind.fps)))

  glyph = change_stroke(glyph, kind.stroke)
  scale = float(rng.uniform(*kind.scale))
  distance = float(rng.uniform(*kind.offset)) * size
  angle = float(rng.uniform(0, 2 * np.pi))
  centre = np.array([distance * np.sin(angle), distance * np.cos(angle)])
  foreground, background = draw_colours(kind, rng)
  # AV-digits' wobble: a random walk of +-1 px a frame within +-2 px (in
  # 32-px units), here a step per frame of this video.
  steps = rng.integers(-1, 2, size=(max(end - onset_frame, 1), 2))
  steps[0] = 0
  walk = np.zeros_like(steps)
  for i in range(1, len(steps)):
    walk[i] = np.clip(walk[i - 1] + steps[i], -av_digits.MAX_WALK_PX,
                      av_digits.MAX_WALK_PX)
  frames = np.broadcast_to(background, (count, size, size, 3)).copy()
  for index, frame in enumerate(range(onset_frame, end)):
    shift = np.round(centre + walk[index] * size / 32).astype(int)
    alpha = place_glyph(glyph, size, scale, tuple(shift))[..., None]
    frames[frame] = np.round(background * (1 - alpha) + foreground * alpha)
  return {"frames": frames, "fps": kind.fps, "onset_frame": onset_frame,
          "start_sample": start}


def write_video(path: pathlib.Path, frames: np.ndarray,
                fps: fractions.Fraction) -> pathlib.Path:
  """Writes RGB frames [F, H, W, 3] (even H, W) as a video-only .mp4.

  H.264 (libx264, CRF 18) where PyAV's FFmpeg has it, else MPEG-4 Part 2.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  try:
    av.codec.Codec("libx264", "w")
    codec, options = "libx264", {"crf": "18"}
  except (av.FFmpegError, ValueError):
    codec, options = "mpeg4", {"qscale": "2"}
  with av.open(str(path), "w") as container:
    stream = container.add_stream(codec, rate=fps, options=options)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    for image in frames:
      frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image),
                                         format="rgb24")
      container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  return path


def _write_wav(path: pathlib.Path, samples: np.ndarray,
               sample_rate: int) -> None:
  soundfile.write(str(path), av_digits.to_int16(samples), sample_rate,
                  subtype="PCM_16")


# --- The set -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Sources:
  """The raw material: test recordings and MNIST test images."""
  audio: dict  # stem -> float32 samples at SAMPLE_RATE
  records: dict  # stem -> (digit, speaker)
  images: np.ndarray
  images_of_digit: dict  # digit -> MNIST t10k indices of the test split


def _read_sources(manual_dir: pathlib.Path, sample_rate: int) -> _Sources:
  try:
    av_digits.check_manual_dir(manual_dir)
  except FileNotFoundError as error:
    raise RobustnessSetError(str(error)) from error
  takes = av_digits.SPLITS["test"]["takes"]
  records, audio = {}, {}
  for path in sorted((manual_dir / "fsdd" / "recordings").glob("*.wav")):
    try:
      digit, speaker, take = av_digits.parse_fsdd_name(path)
    except ValueError as error:
      raise RobustnessSetError(str(error)) from error
    if take in takes:
      records[path.stem] = (digit, speaker)
      audio[path.stem] = media.load_audio(path, sample_rate)[:, 0]
  missing = sorted(set(range(10)) - {d for d, _ in records.values()})
  if missing:
    raise RobustnessSetError(
        f"{manual_dir / 'fsdd' / 'recordings'}: no test take (0-4) of "
        f"digit(s) {missing}")
  images = av_digits.read_idx(manual_dir / "mnist" / av_digits.MNIST_IMAGES)
  labels = av_digits.read_idx(manual_dir / "mnist" / av_digits.MNIST_LABELS)
  ids = np.asarray(av_digits.SPLITS["test"]["images"])
  return _Sources(audio=audio, records=records, images=images,
                  images_of_digit={k: ids[labels[ids] == k]
                                   for k in range(10)})


def check_kinds(kinds: Optional[Iterable[str]]) -> tuple[str, ...]:
  """The kinds asked for (all when None), each a key of KINDS."""
  if kinds is None:
    return tuple(KINDS)
  kinds = tuple(kinds)
  unknown = [k for k in kinds if k not in KINDS]
  if unknown or not kinds:
    raise RobustnessSetError(f"unknown robustness kind(s) {unknown or '[]'};"
                             f" known: {', '.join(KINDS)}")
  return kinds


def set_description(seed: int, clips_per_kind: int,
                    kinds: Sequence[str]) -> dict:
  """What set.json says of a set; equal descriptions mean equal sets."""
  return {"version": SET_VERSION, "seed": int(seed),
          "clips_per_kind": int(clips_per_kind), "kinds": list(kinds),
          "sample_rate": SAMPLE_RATE, "num_samples": NUM_SAMPLES,
          "audio": "FSDD test takes 0-4; every speaker is also in training "
                   "(takes 5-49)"}


def make_set(manual_dir, output_dir, *, clips_per_kind: int =
             DEFAULT_CLIPS_PER_KIND, kinds: Optional[Iterable[str]] = None,
             seed: int = 0) -> pathlib.Path:
  """Writes a robustness set (see the module docstring) to `output_dir`.

  Each kind has `clips_per_kind` clips, digit i % 10 for clip i, each with a
  different test recording of that digit (in a seeded order, so speakers
  vary) and, for MNIST kinds, a test-split MNIST image of the digit.

  Args:
    manual_dir: the raw data folder (fsdd/recordings, mnist/).
    output_dir: where to write (created; existing clips are overwritten).
    clips_per_kind: clips of each kind, >= 1.
    kinds: names of KINDS to make (default all).
    seed: seed of every random choice.

  Returns:
    The manifest's path.

  Raises:
    RobustnessSetError: bad arguments or raw data.
  """
  kinds = check_kinds(kinds)
  if isinstance(clips_per_kind, bool) or not isinstance(
      clips_per_kind, int) or clips_per_kind < 1:
    raise RobustnessSetError(f"clips_per_kind must be an integer >= 1, got "
                             f"{clips_per_kind!r}")
  manual_dir = pathlib.Path(manual_dir)
  output_dir = pathlib.Path(output_dir)
  sources = _read_sources(manual_dir, SAMPLE_RATE)
  stems_of_digit = {k: sorted(s for s, (d, _) in sources.records.items()
                              if d == k) for k in range(10)}
  rows = []
  for kind_name in kinds:
    kind = KINDS[kind_name]
    rng = common.stable_rng(seed, "robustness", kind_name)
    order = {k: list(rng.permutation(stems)) for k, stems in
             stems_of_digit.items()}
    for index in range(clips_per_kind):
      digit = index % 10
      stems = order[digit]
      stem = stems[(index // 10) % len(stems)]
      speaker = sources.records[stem][1]
      others = sorted(s for s, (d, spk) in sources.records.items()
                      if spk == speaker and d != digit)
      reference_id = str(rng.choice(others))
      if kind.glyph == "font":
        source = FONTS[int(rng.integers(len(FONTS)))]
        glyph = font_glyph(digit, source)
      else:
        image_id = int(rng.choice(sources.images_of_digit[digit]))
        source = f"mnist_t10k_{image_id}"
        glyph = sources.images[image_id].astype(np.float32) / 255.0
      recording = sources.audio[stem]
      clip = render_clip(kind, glyph, len(recording), rng)
      folder = output_dir / "clips" / kind_name
      name = f"{index:03d}"
      write_video(folder / f"{name}.mp4", clip["frames"], clip["fps"])
      _write_wav(folder / f"{name}_reference.wav",
                 av_digits.place(sources.audio[reference_id], 0,
                                 NUM_SAMPLES), SAMPLE_RATE)
      _write_wav(folder / f"{name}_target.wav",
                 av_digits.place(recording, clip["start_sample"],
                                 NUM_SAMPLES), SAMPLE_RATE)
      relative = f"clips/{kind_name}/{name}"
      rows.append({
          "video": f"{relative}.mp4",
          "reference": f"{relative}_reference.wav",
          "output": f"generated/{kind_name}/{name}.wav",
          "target": f"{relative}_target.wav",
          "kind": kind_name, "digit": digit, "speaker": speaker,
          "onset_seconds": f"{clip['start_sample'] / SAMPLE_RATE:.6f}",
          "target_id": stem, "reference_id": reference_id,
          "source": source})
  output_dir.mkdir(parents=True, exist_ok=True)
  manifest = output_dir / MANIFEST_FILE
  with open(manifest, "w", newline="", encoding="utf-8") as file:
    writer = csv.DictWriter(file, fieldnames=MANIFEST_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  (output_dir / SET_FILE).write_text(json.dumps(
      set_description(seed, clips_per_kind, kinds), indent=1))
  return manifest


@dataclasses.dataclass(frozen=True)
class SetRow:
  """One clip of a set, paths resolved against the set's folder."""
  video: pathlib.Path
  reference: pathlib.Path
  target: pathlib.Path
  output: pathlib.Path
  kind: str
  digit: int
  speaker: str
  onset_seconds: float
  target_id: str
  reference_id: str
  source: str


def read_set(set_dir) -> tuple[dict, list[SetRow]]:
  """(set.json's description, the manifest's rows) of a made set.

  Raises:
    RobustnessSetError: no set there, or a manifest that lacks a column or
      holds a bad value (the message names the file and row).
  """
  set_dir = pathlib.Path(set_dir)
  info_path, manifest = set_dir / SET_FILE, set_dir / MANIFEST_FILE
  for path in (info_path, manifest):
    if not path.is_file():
      raise RobustnessSetError(f"{path}: no such file (make the set with "
                               "wavegan_jax.data.robustness.make_set)")
  try:
    info = json.loads(info_path.read_text())
  except ValueError as error:
    raise RobustnessSetError(f"{info_path}: not valid JSON ({error})"
                             ) from error
  with open(manifest, newline="", encoding="utf-8") as file:
    reader = csv.DictReader(file)
    missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames
                                                        or [])]
    if missing:
      raise RobustnessSetError(f"{manifest}: missing column(s) "
                               f"{', '.join(missing)}")
    rows = []
    for number, line in enumerate(reader, start=2):
      try:
        rows.append(SetRow(
            video=set_dir / line["video"],
            reference=set_dir / line["reference"],
            target=set_dir / line["target"], output=set_dir / line["output"],
            kind=line["kind"], digit=int(line["digit"]),
            speaker=line["speaker"],
            onset_seconds=float(line["onset_seconds"]),
            target_id=line["target_id"], reference_id=line["reference_id"],
            source=line["source"]))
      except (TypeError, ValueError) as error:
        raise RobustnessSetError(f"{manifest}: row {number}: {error}"
                                 ) from error
  if not rows:
    raise RobustnessSetError(f"{manifest}: no clips")
  return info, rows
