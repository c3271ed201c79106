"""Tests for wavegan_jax.models.visual."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wavegan_jax.models import visual

TINY = dict(frame_size=8, channels=1, conv_features=(4, 8), frame_features=16,
            lstm_features=8, context_features=6)


def _video(batch=2, time=5, size=8, seed=0):
  """A bright square moving one pixel per frame on a dark background."""
  rng = np.random.default_rng(seed)
  video = np.zeros((batch, time, size, size, 1), np.uint8)
  for b in range(batch):
    row = rng.integers(0, size - 3)
    for t in range(time):
      col = (b + t) % (size - 3)
      video[b, t, row:row + 3, col:col + 3] = 255
  return jnp.asarray(video)


def test_frames_to_unit():
  video = jnp.asarray([0, 51, 255], jnp.uint8)
  np.testing.assert_allclose(visual.frames_to_unit(video), [0.0, 0.2, 1.0])
  floats = jnp.asarray([0.0, 0.5], jnp.float32)
  np.testing.assert_array_equal(visual.frames_to_unit(floats), floats)


def test_shapes_and_encode_matches_call():
  model = visual.VisualModel(**TINY)
  video = _video()
  params = jax.jit(model.init)(jax.random.key(0), video)
  out = jax.jit(model.apply)(params, video)
  assert out["features"].shape == (2, 5, 16)
  np.testing.assert_allclose(jnp.mean(out["features"] ** 2, -1), 1.0,
                             rtol=1e-3)
  assert out["context"].shape == (2, 5, 6)
  assert out["reconstruction"].shape == (2, 5, 16)
  assert out["frames"].shape == (2, 5, 8, 8, 1)
  for value in out.values():
    assert value.dtype == jnp.float32
  encode = jax.jit(lambda p, v: model.apply(p, v, method=model.encode))
  context = encode(params, video)
  np.testing.assert_allclose(context, out["context"], rtol=1e-6, atol=1e-6)
  # Float frames in [0, 1] give the same result as the uint8 ones.
  as_float = encode(params, video.astype(jnp.float32) / 255.0)
  np.testing.assert_allclose(as_float, context, rtol=1e-5, atol=1e-6)


def test_bad_shapes_raise_clear_errors():
  video = _video()
  with pytest.raises(ValueError, match=r"expects video \[batch, time, 8, 8, 1"
                     r"\], got shape \(2, 5, 8, 8\)"):
    visual.VisualModel(**TINY).init(jax.random.key(0), video[..., 0])
  with pytest.raises(ValueError, match="frame_size=12 is not divisible by"):
    visual.VisualModel(**{**TINY, "frame_size": 12, "conv_features": (
        4, 8, 8)}).init(jax.random.key(0), _video(size=12))


def test_gradients_flow_and_adam_reduces_reconstruction_loss():
  model = visual.VisualModel(**TINY)
  video = _video(batch=4)
  target_frames = visual.frames_to_unit(video)
  params = jax.jit(model.init)(jax.random.key(0), video)
  optimizer = optax.adam(3e-3)

  def loss_fn(p):
    out = model.apply(p, video)
    feature_loss = jnp.mean(
        (out["reconstruction"] - jax.lax.stop_gradient(out["features"])) ** 2)
    pixel_loss = jnp.mean((out["frames"] - target_frames) ** 2)
    return feature_loss + pixel_loss, pixel_loss

  @jax.jit
  def step(p, opt_state):
    (loss, pixel_loss), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(p, updates), opt_state, loss, pixel_loss, grads

  opt_state = optimizer.init(params)
  first = None
  for _ in range(80):
    params, opt_state, loss, pixel_loss, grads = step(params, opt_state)
    if first is None:
      first = (loss, pixel_loss)
      for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert np.abs(np.asarray(leaf)).max() > 0, path
  assert float(loss) < 0.5 * float(first[0])
  # Below the initial error and below predicting the mean frame.
  assert float(pixel_loss) < 0.75 * float(first[1])
  assert float(pixel_loss) < float(jnp.var(target_frames))


def test_default_parameter_count_matches_docstring():
  model = visual.VisualModel()
  video = jax.ShapeDtypeStruct((1, 32, 32, 32, 1), jnp.uint8)
  params = jax.eval_shape(model.init, jax.random.key(0), video)
  assert visual.count_params(params) == 856_897
