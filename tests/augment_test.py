"""Tests of the training-time video re-rendering (data/augment.py)."""

import re

import ml_collections
import numpy as np
import pytest

from experiments import av_digits as av_digits_config
from wavegan_jax import errors
from wavegan_jax.data import augment
from wavegan_jax.data import av_digits
from wavegan_jax.training.stages import autoencoders

ON = dict(fraction=1.0, scale=(0.6, 1.4), translate=0.2, stroke=1.5,
          invert=0.5, contrast=0.3)


def _config(block):
  config = ml_collections.ConfigDict()
  config.visual = ml_collections.ConfigDict()
  config.visual.augment = block
  return config


def _video(batch=4, frames=6, size=16, seed=0):
  """Clips whose middle frames hold a bright block, the rest black."""
  rng = np.random.default_rng(seed)
  video = np.zeros((batch, frames, size, size, 1), np.uint8)
  for clip in range(batch):
    top, left = rng.integers(3, size - 8, 2)
    video[clip, 1:-1, top:top + 5, left:left + 3] = 255
  return video


def test_default_config_is_off_and_passes_batches_through():
  config = av_digits_config.get_config()
  assert augment.params_from_config(config) is None
  make_batches = lambda start: iter([{"video": _video()}])
  assert augment.augmented_batches(make_batches, config, "visual",
                                   0) is make_batches


def test_off_is_identity():
  video = _video()
  rng = np.random.default_rng(0)
  assert augment.augment_video(video, rng, None) is video
  off = augment.params_from_config(_config(dict(ON, fraction=0.0)))
  assert off is None


def test_shapes_dtype_and_seeded_determinism():
  params = augment.params_from_config(_config(ON))
  video = _video()
  first = augment.augment_video(video, np.random.default_rng(7), params)
  again = augment.augment_video(video, np.random.default_rng(7), params)
  other = augment.augment_video(video, np.random.default_rng(8), params)
  assert first.shape == video.shape and first.dtype == np.uint8
  np.testing.assert_array_equal(first, again)
  assert np.any(first != other)
  assert np.any(first != video)
  # The input is not modified in place.
  np.testing.assert_array_equal(video, _video())


def test_neutral_draws_leave_clips_unchanged():
  # Scale 1, no shift, no stroke change, full contrast, never inverted.
  params = augment.AugmentParams(fraction=1.0)
  video = _video()
  np.testing.assert_array_equal(
      augment.augment_video(video, np.random.default_rng(0), params), video)


def test_invert_only_gives_255_minus_the_frames():
  params = augment.AugmentParams(fraction=1.0, invert=1.0)
  video = _video()
  out = augment.augment_video(video, np.random.default_rng(0), params)
  np.testing.assert_array_equal(out, 255 - video)


def test_contrast_maps_black_and_white_to_two_levels_at_least_the_gap_apart():
  params = augment.AugmentParams(fraction=1.0, contrast=0.4)
  video = _video(batch=8)
  out = augment.augment_video(video, np.random.default_rng(3), params)
  for clip, original in zip(out, video):
    low = np.unique(clip[original == 0])
    high = np.unique(clip[original == 255])
    assert len(low) == 1 and len(high) == 1
    assert int(high[0]) - int(low[0]) >= 0.4 * 255 - 1


def test_integer_shift_equals_moving_the_image():
  frames = _video()[0, ..., 0].astype(np.float32)
  moved = augment.resample(frames, 1.0, (2.0, -3.0))
  expected = np.stack([av_digits.shift_image(f, 2, -3) for f in frames])
  np.testing.assert_allclose(moved, expected, atol=1e-6)


def test_scale_two_doubles_the_extent_about_the_centre():
  frame = np.zeros((1, 16, 16), np.float32)
  frame[0, 6:10, 6:10] = 1.0  # A 4x4 block centred on (7.5, 7.5).
  out = augment.resample(frame, 2.0, (0.0, 0.0))
  rows = np.flatnonzero(out[0].max(axis=1) > 0.5)
  assert rows.min() == 4 and rows.max() == 11  # 8 rows, same centre.


def test_stroke_change_widens_and_narrows_a_bar():
  frame = np.zeros((1, 12, 12), np.float32)
  frame[0, :, 4:8] = 1.0  # A vertical bar 4 px wide.
  wider = augment.change_stroke(frame, 2.0)
  narrower = augment.change_stroke(frame, -2.0)
  assert np.sum(wider[0, 6] > 0.5) == 6
  assert np.sum(narrower[0, 6] > 0.5) == 2
  half = augment.change_stroke(frame, 1.0)  # Half way to the dilation.
  np.testing.assert_allclose(half[0, 6, 3], 0.5)


def test_fraction_picks_a_share_of_the_clips():
  params = augment.AugmentParams(fraction=0.5, invert=1.0)
  video = _video(batch=64)
  out = augment.augment_video(video, np.random.default_rng(0), params)
  changed = np.any(out != video, axis=(1, 2, 3, 4))
  assert 20 <= changed.sum() <= 44
  np.testing.assert_array_equal(out[~changed], video[~changed])


def test_wrapped_batches_are_seeded_by_step_and_resume_the_same():
  config = _config(dict(ON, stages=("visual",)))
  batches = [{"video": _video(seed=i), "target": np.full(2, i)}
             for i in range(4)]
  make = augment.augmented_batches(lambda start: iter(batches[start:]),
                                   config, "visual", seed=5)
  full = list(make(0))
  resumed = list(make(2))
  for a, b in zip(full[2:], resumed):
    np.testing.assert_array_equal(a["video"], b["video"])
  np.testing.assert_array_equal(full[1]["target"], batches[1]["target"])
  # A stage the block does not name keeps its batches.
  make_generator = lambda start: iter(batches)
  assert augment.augmented_batches(make_generator, config, "generator",
                                   5) is make_generator


@pytest.mark.parametrize("block, named", [
    (dict(fraction=1.5), "visual.augment.fraction"),
    (dict(fraction=1.0, scale=(1.2, 0.8)), "visual.augment.scale"),
    (dict(fraction=1.0, scale=(0.0, 1.0)), "visual.augment.scale"),
    (dict(fraction=1.0, translate=-0.1), "visual.augment.translate"),
    (dict(fraction=1.0, contrast=0.0), "visual.augment.contrast"),
    (dict(fraction=1.0, invert="yes"), "visual.augment.invert"),
    (dict(fraction=1.0, stages=("acoustic",)), "visual.augment.stages"),
    (dict(fraction=1.0, rotate=10), "unknown key(s) ['rotate']"),
])
def test_bad_values_are_named(block, named):
  with pytest.raises(augment.AugmentConfigError, match=re.escape(named)):
    augment.params_from_config(_config(block))
  with pytest.raises(errors.UserFacingError):
    autoencoders.augmented(lambda start: iter([]), _config(block), "visual",
                           0)
