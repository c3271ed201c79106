"""Tests for evaluation/digit_frames.py: a digit video -> AV-digits' drawing."""

import pathlib

import numpy as np
from PIL import Image
import pytest
from scipy import ndimage

from wavegan_jax.data import av_digits
from wavegan_jax.evaluation import digit_frames

MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / (
    "mnist/t10k-images-idx3-ubyte.gz")
SIZE = 32


@pytest.fixture(scope="module")
def digits():
  if not MNIST.is_file():
    pytest.skip(f"{MNIST} is not there")
  return av_digits.read_idx(MNIST)[:40]


def _as_av_digits(image):
  """One MNIST image as AV-digits draws it (28 -> 32 px, bilinear)."""
  return np.asarray(Image.fromarray(image).resize(
      (SIZE, SIZE), Image.Resampling.BILINEAR))


def _clip(frame, first=3, last=8, length=10):
  clip = np.zeros((length,) + frame.shape, np.uint8)
  clip[first:last] = frame
  return clip


def _correlation(a, b):
  return np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1]


def test_av_digits_own_drawing_is_nearly_unchanged(digits):
  correlations = []
  for image in digits:
    frame = _as_av_digits(image)
    out = digit_frames.normalize_digit_frames(_clip(frame), SIZE)
    assert out.shape == (10, SIZE, SIZE, 1) and out.dtype == np.uint8
    # The empty frames before and after the digit stay empty.
    assert not out[:3].any() and not out[8:].any()
    correlations.append(_correlation(out[5, ..., 0], frame))
  assert np.median(correlations) > 0.95
  assert min(correlations) > 0.85


def test_dark_ink_on_a_light_ground_gives_the_light_drawing(digits):
  for image in digits[:10]:
    clip = _clip(_as_av_digits(image))
    # The inverted clip's empty frames are white: the ground, not ink.
    light = digit_frames.normalize_digit_frames(clip, SIZE)
    dark = digit_frames.normalize_digit_frames(255 - clip, SIZE)
    assert np.abs(light.astype(int) - dark.astype(int)).mean() < 1.0
    assert not dark[:3].any()


def test_low_contrast_grey_levels_are_stretched(digits):
  frame = _as_av_digits(digits[0]).astype(np.float32) / 255.0
  grey = np.round((0.4 + 0.35 * frame) * 255).astype(np.uint8)
  clip = np.full((10, SIZE, SIZE), round(0.4 * 255), np.uint8)
  clip[3:8] = grey
  out = digit_frames.normalize_digit_frames(clip, SIZE)
  reference = digit_frames.normalize_digit_frames(
      _clip(_as_av_digits(digits[0])), SIZE)
  assert out.max() >= 240 and not out[:3].any()
  assert _correlation(out[5], reference[5]) > 0.97


def test_small_off_centre_digit_on_a_large_frame_is_centred_and_sized(digits):
  correlations = []
  for image in digits[:20]:
    reference = _as_av_digits(image)
    # MNIST's 28 px in the top-left part of a 192 x 160 frame: 0.18 of its
    # width, where AV-digits' digit spans the whole frame.
    frame = np.zeros((160, 192), np.uint8)
    frame[12:40, 20:48] = image
    out = digit_frames.normalize_digit_frames(_clip(frame), SIZE)
    plain_resize = np.asarray(Image.fromarray(frame).resize(
        (SIZE, SIZE), Image.Resampling.BILINEAR))
    correlations.append((_correlation(out[5, ..., 0], reference),
                         _correlation(plain_resize, reference)))
  normalized, resized = np.median(np.array(correlations), axis=0)
  assert normalized > 0.9
  assert resized < 0.3


def test_motion_between_frames_is_kept(digits):
  frame = _as_av_digits(digits[1])
  clip = np.zeros((4, 64, 64), np.uint8)
  for index, shift in enumerate((0, 2, 4, 6)):
    canvas = np.zeros((64, 64), np.uint8)
    canvas[10:42, 10 + shift:42 + shift] = frame
    clip[index] = canvas
  out = digit_frames.normalize_digit_frames(clip, SIZE)[..., 0]
  columns = [ndimage.center_of_mass(f.astype(float))[1] for f in out]
  steps = np.diff(columns)
  # One scale for the clip (the digit is drawn at its own 32 px size here,
  # so ~1): the 2 px steps stay steps of about 2 px.
  np.testing.assert_allclose(steps, 2.0, atol=0.35)
  # The clip's mean centre is MNIST's.
  centre = digit_frames.MNIST_CENTRE_FRACTION * SIZE - 0.5
  assert abs(np.mean(columns) - centre) < 0.35


def test_a_clip_without_contrast_is_only_resized():
  flat = np.full((5, 48, 64), 90, np.uint8)
  out = digit_frames.normalize_digit_frames(flat, SIZE)
  assert out.shape == (5, SIZE, SIZE, 1)
  np.testing.assert_array_equal(out, 90)
  empty = np.zeros((5, 48, 48, 1), np.uint8)
  np.testing.assert_array_equal(
      digit_frames.normalize_digit_frames(empty, SIZE), 0)


def test_bad_shapes_raise_clear_errors():
  with pytest.raises(ValueError, match=r"\[T, H, W\]"):
    digit_frames.normalize_digit_frames(np.zeros((32, 32), np.uint8), SIZE)
  with pytest.raises(ValueError, match="T > 0"):
    digit_frames.normalize_digit_frames(np.zeros((0, 32, 32), np.uint8), SIZE)
