"""A user's digit video brought to the way AV-digits draws its digits.

AV-digits shows an MNIST digit: light ink on a black frame, its longer side
20/28 of the frame, its centre of mass at the frame's centre (MNIST's own
normalisation, kept by the 28 -> 32 px resize), and empty black frames
before and after the spoken digit. A visual encoder trained on that alone
loses most of its accuracy on dark ink, coloured frames, small or
off-centre digits (docs/robustness.md). `normalize_digit_frames` maps any
clip of one digit on a plain ground to that drawing:

  levels    the ground (the clip's median) to 0 and the ink (the far side of
            the ground, whichever sign it has: dark ink is inverted) to 1;
  presence  frames with little ink (under PRESENT_MASS of the fullest
            frame's) become empty;
  geometry  one scale and shift for the whole clip, so the longer side of the
            ink's box (median over the frames with ink) becomes MNIST's
            20/28 of the frame and the mean centre of mass MNIST's; the
            motion between frames is kept.

A clip whose ink stands out by less than MIN_CONTRAST is resized only
(nothing to measure).
"""

import numpy as np
from PIL import Image
from scipy import ndimage

MNIST_BOX_FRACTION = 20.0 / 28.0
# MNIST's centre of mass: pixel (14, 14) of 28 (measured on t10k: 14.0,
# 14.1), as a fraction of the side in pixel-edge units.
MNIST_CENTRE_FRACTION = 14.5 / 28.0
# A clip whose ink is within this much (of full scale) of its ground has no
# digit to measure.
MIN_CONTRAST = 0.08
# Levels below this fraction of the ink's are ground (compression noise).
GROUND_LEVEL = 0.15
# A frame holds the digit when its ink mass reaches this share of the
# fullest frame's.
PRESENT_MASS = 0.25
# Ink above this level counts in a frame's box.
BOX_LEVEL = 0.3
# The ink's level: the mean of this many pixels farthest from the ground
# (stroke cores; a small digit is well under 1% of a clip's pixels, so no
# quantile of the clip would find it).
INK_PIXELS = 16


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
  return np.stack([np.asarray(Image.fromarray(frame).resize(
      (size, size), Image.Resampling.BILINEAR)) for frame in frames])


def ink_levels(frames: np.ndarray) -> np.ndarray | None:
  """float32 [T, H, W] in [0, 1]: 0 the ground, 1 the ink; None when the
  clip has no contrast to measure."""
  levels = frames.astype(np.float32) / 255.0
  deviation = levels - np.median(levels)
  flat = deviation.ravel()
  count = min(INK_PIXELS, flat.size)
  bright = float(np.partition(flat, flat.size - count)[-count:].mean())
  dark = float(-np.partition(flat, count - 1)[:count].mean())
  if dark > bright:  # Dark ink on a light ground.
    deviation, bright = -deviation, dark
  if bright < MIN_CONTRAST:
    return None
  ink = np.clip(deviation / bright, 0.0, 1.0)
  return np.clip((ink - GROUND_LEVEL) / (1.0 - GROUND_LEVEL), 0.0, 1.0)


def _box_side(frame: np.ndarray) -> float:
  rows = np.flatnonzero(frame.max(axis=1) > BOX_LEVEL)
  cols = np.flatnonzero(frame.max(axis=0) > BOX_LEVEL)
  if rows.size == 0:
    return 0.0
  return float(max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1))


def normalize_digit_frames(frames: np.ndarray, size: int) -> np.ndarray:
  """Grayscale frames of one digit -> AV-digits' drawing of it.

  Args:
    frames: uint8 [T, H, W] or [T, H, W, 1], any frame size and aspect.
    size: the model's square frame side.

  Returns:
    uint8 [T, size, size, 1].
  """
  if frames.ndim == 4:
    frames = frames[..., 0]
  if frames.ndim != 3 or frames.shape[0] == 0:
    raise ValueError(f"frames must be [T, H, W] with T > 0, got shape "
                     f"{frames.shape}")
  ink = ink_levels(frames)
  if ink is None:
    return _resize(frames, size)[..., None]
  mass = ink.sum(axis=(1, 2))
  present = mass >= PRESENT_MASS * mass.max()
  sides = [_box_side(frame) for frame in ink[present]]
  side = float(np.median(sides))
  centres = np.array([ndimage.center_of_mass(frame)
                      for frame in ink[present]])
  centre = centres.mean(axis=0)
  # Output pixel p samples the input at centre + (p - out_centre) / scale.
  scale = MNIST_BOX_FRACTION * size / max(side, 1.0)
  out_centre = MNIST_CENTRE_FRACTION * size - 0.5
  # Anti-aliasing before shrinking: a Gaussian of about half the input
  # pixels that one output pixel spans.
  blur = max(0.0, (1.0 / scale - 1.0) / 2.0)
  out = np.zeros((frames.shape[0], size, size), np.float32)
  for index in np.flatnonzero(present):
    frame = ndimage.gaussian_filter(ink[index], blur) if blur else ink[index]
    out[index] = ndimage.affine_transform(
        frame, np.full(2, 1.0 / scale), offset=centre - out_centre / scale,
        output_shape=(size, size), order=1, mode="constant", cval=0.0)
  return np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)[..., None]
