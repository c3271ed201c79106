"""Training-time re-rendering of digit videos: `config.visual.augment`.

AV-digits draws every digit the same way (MNIST, white on black, one size,
centred); users' videos do not (docs/robustness.md). With `fraction` > 0
that share of each training batch's clips is re-rendered before the step
sees it, one random transform per clip, applied to all of its frames:

  1. stroke width: grey dilation (thicker) or erosion (thinner) with a 3x3
     square, blended: a width change d (pixels, uniform in [-stroke,
     stroke]) takes |d| / 2 of the way to the dilated / eroded frame;
  2. scale and translation: the frame resampled (bilinear, zeros outside)
     about its centre by s ~ U[scale] and shifted by t ~ U[-translate,
     translate] x frame size on each axis;
  3. levels: the background (0) goes to `low` and full ink (255) to `high`,
     |high - low| ~ U[contrast, 1]; with probability `invert` the digit is
     darker than its background (low > high).

It runs on the host (numpy), on the batches `make_batches` yields, so the
visual stage's frame budget counts the frames the step really sees. The
draws of step k come from numpy's Generator seeded by (seed, k, process
index): a run is reproducible and a resumed run draws what it would have.
With `fraction` 0 (the default) batches pass through untouched.

Keys of `config.visual.augment` (all optional but `fraction`):
  fraction: share of clips re-rendered, in [0, 1]; 0 is off.
  scale: (low, high) > 0 of the scale factor.
  translate: largest shift as a fraction of the frame size, in [0, 1).
  stroke: largest stroke width change in pixels, >= 0.
  invert: probability that a re-rendered clip is inverted, in [0, 1].
  contrast: smallest |high - low| in (0, 1].
  stages: which stages' training batches: ('visual', 'generator').
"""

import dataclasses
from typing import Callable, Iterator, Optional

import jax
import ml_collections
import numpy as np

from wavegan_jax import errors

STAGES = ("visual", "generator")


AugmentConfigError = errors.AugmentConfigError


@dataclasses.dataclass(frozen=True)
class AugmentParams:
  """The parsed `visual.augment` block (see the module docstring)."""
  fraction: float = 0.0
  scale: tuple[float, float] = (1.0, 1.0)
  translate: float = 0.0
  stroke: float = 0.0
  invert: float = 0.0
  contrast: float = 1.0
  stages: tuple[str, ...] = STAGES


def _number(key, value, low, high, *, low_open=False, high_open=False):
  bad = isinstance(value, bool) or not isinstance(value, (int, float))
  if not bad:
    bad = (value < low or value > high or (low_open and value == low)
           or (high_open and value == high))
  if bad:
    interval = (("(" if low_open else "[") + f"{low}, {high}" +
                (")" if high_open else "]"))
    raise AugmentConfigError(f"visual.augment.{key} must be a number in "
                             f"{interval}, got {value!r}")
  return float(value)


def params_from_config(config: ml_collections.ConfigDict
                       ) -> Optional[AugmentParams]:
  """The augmentation of an experiment config; None when it is off.

  Raises:
    AugmentConfigError: an unknown key or a value out of range.
  """
  block = config.get("visual", {}).get("augment")
  if not block:
    return None
  block = dict(block)
  known = {field.name for field in dataclasses.fields(AugmentParams)}
  unknown = sorted(set(block) - known)
  if unknown:
    raise AugmentConfigError(f"visual.augment has unknown key(s) {unknown}; "
                             f"known: {sorted(known)}")
  inf = float("inf")
  fraction = _number("fraction", block.get("fraction", 0.0), 0, 1)
  if not fraction:
    return None
  scale = block.get("scale", (1.0, 1.0))
  if not isinstance(scale, (tuple, list)) or len(scale) != 2:
    raise AugmentConfigError(f"visual.augment.scale must be (low, high), got "
                             f"{scale!r}")
  scale = tuple(_number("scale", s, 0, inf, low_open=True) for s in scale)
  if scale[0] > scale[1]:
    raise AugmentConfigError(f"visual.augment.scale must be (low, high) with "
                             f"low <= high, got {scale!r}")
  stages = tuple(block.get("stages", STAGES))
  if not stages or any(stage not in STAGES for stage in stages):
    raise AugmentConfigError(f"visual.augment.stages must name stages of "
                             f"{STAGES}, got {stages!r}")
  return AugmentParams(
      fraction=fraction, scale=scale,
      translate=_number("translate", block.get("translate", 0.0), 0, 1,
                        high_open=True),
      stroke=_number("stroke", block.get("stroke", 0.0), 0, inf),
      invert=_number("invert", block.get("invert", 0.0), 0, 1),
      contrast=_number("contrast", block.get("contrast", 1.0), 0, 1,
                       low_open=True),
      stages=stages)


def _neighbourhood(frames: np.ndarray, reduce) -> np.ndarray:
  """max / min over each pixel's 3x3 neighbourhood of [..., H, W] frames
  (edges padded by repetition)."""
  padded = np.pad(frames, [(0, 0)] * (frames.ndim - 2) + [(1, 1), (1, 1)],
                  mode="edge")
  height, width = frames.shape[-2:]
  result = frames
  for dy in range(3):
    for dx in range(3):
      result = reduce(result, padded[..., dy:dy + height, dx:dx + width])
  return result


def change_stroke(frames: np.ndarray, width_change: float) -> np.ndarray:
  """Float frames [..., H, W] in [0, 1] with strokes `width_change` px wider.

  A 3x3 dilation (erosion) widens (narrows) a stroke by 2 px; a change of d
  blends min(|d| / 2, 1) of the way to it.
  """
  if not width_change:
    return frames
  reduce = np.maximum if width_change > 0 else np.minimum
  weight = min(abs(width_change) / 2.0, 1.0)
  return frames + weight * (_neighbourhood(frames, reduce) - frames)


def resample(frames: np.ndarray, scale: float, shift: tuple[float, float]
             ) -> np.ndarray:
  """Float frames [..., H, W] scaled by `scale` about the centre, moved by
  `shift` (dy, dx) pixels; bilinear, zero outside the source frame.

  Output pixel p reads the source at (p - c - shift) / scale + c, c the
  frame's centre; scale 1 and an integer shift move pixels exactly.
  """
  height, width = frames.shape[-2:]
  centre_y, centre_x = (height - 1) / 2.0, (width - 1) / 2.0
  source_y = (np.arange(height) - centre_y - shift[0]) / scale + centre_y
  source_x = (np.arange(width) - centre_x - shift[1]) / scale + centre_x
  padded = np.pad(frames, [(0, 0)] * (frames.ndim - 2) + [(1, 1), (1, 1)])

  def taps(source, size):
    low = np.floor(source)
    weight = source - low
    # +1: index into the zero-padded frame; out-of-frame reads hit the pad.
    low = np.clip(low.astype(int) + 1, 0, size + 1)
    high = np.clip(low + 1, 0, size + 1)
    return low, high, weight

  y0, y1, wy = taps(source_y, height)
  x0, x1, wx = taps(source_x, width)
  rows0, rows1 = padded[..., y0, :], padded[..., y1, :]
  top = rows0[..., x0] * (1 - wx) + rows0[..., x1] * wx
  bottom = rows1[..., x0] * (1 - wx) + rows1[..., x1] * wx
  return top * (1 - wy[:, None]) + bottom * wy[:, None]


def augment_clip(clip: np.ndarray, rng: np.random.Generator,
                 params: AugmentParams) -> np.ndarray:
  """One clip [T, H, W, C] uint8 re-rendered with one random transform."""
  height = clip.shape[1]
  frames = np.moveaxis(clip.astype(np.float32) / 255.0, -1, 1)  # T, C, H, W
  frames = change_stroke(frames, rng.uniform(-params.stroke, params.stroke))
  scale = rng.uniform(*params.scale)
  shift = rng.uniform(-params.translate, params.translate, 2) * height
  frames = resample(frames, scale, tuple(shift))
  gap = rng.uniform(params.contrast, 1.0)
  low = rng.uniform(0.0, 1.0 - gap)
  high = low + gap
  if rng.uniform() < params.invert:
    low, high = high, low
  frames = low + (high - low) * np.clip(frames, 0.0, 1.0)
  out = np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
  return np.moveaxis(out, 1, -1)


def augment_video(video: np.ndarray, rng: np.random.Generator,
                  params: Optional[AugmentParams]) -> np.ndarray:
  """A batch of clips [B, T, H, W, C] uint8 with `fraction` of them
  re-rendered (each by its own draw); the input itself when off."""
  if params is None or not params.fraction:
    return video
  video = np.asarray(video)
  if video.ndim != 5 or video.dtype != np.uint8:
    raise ValueError(f"augment_video expects uint8 [B, T, H, W, C], got "
                     f"{video.dtype} {video.shape}")
  chosen = rng.uniform(size=len(video)) < params.fraction
  out = video.copy()
  for index in np.flatnonzero(chosen):
    out[index] = augment_clip(video[index], rng, params)
  return out


def augmented_batches(make_batches: Callable[[int], Iterator[dict]],
                      config: ml_collections.ConfigDict, stage: str,
                      seed: int) -> Callable[[int], Iterator[dict]]:
  """`make_batches` of a stage with the config's augmentation of 'video'.

  Args:
    make_batches: start_step -> iterator of host batches (a 'video' key).
    config: the experiment config (`visual.augment`).
    stage: 'visual' or 'generator'.
    seed: the stage's seed.

  Returns:
    make_batches itself when the augmentation is off for `stage`, else a
    function whose batch of step k has its video re-rendered with draws
    from (seed, k, process index).

  Raises:
    AugmentConfigError: a bad `visual.augment`.
  """
  params = params_from_config(config)
  if params is None or stage not in params.stages:
    return make_batches

  def make(start_step: int) -> Iterator[dict]:
    process = jax.process_index()
    for step, batch in enumerate(make_batches(start_step), start=start_step):
      rng = np.random.default_rng((seed, step, process))
      yield dict(batch, video=augment_video(batch["video"], rng, params))
  return make
