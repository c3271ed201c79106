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


def test_space_to_depth_by_hand_and_inverse():
  # One 4x4 frame with two channels: pixel (r, c, ch) = 10 * (4r + c) + ch.
  frame = (10 * np.arange(16).reshape(4, 4, 1) + np.arange(2)).astype(
      np.float32)[None]
  folded = visual.space_to_depth(jnp.asarray(frame))
  assert folded.shape == (1, 2, 2, 8)
  # Block (0, 1) holds pixels (0, 2), (0, 3), (1, 2), (1, 3), channels inner.
  np.testing.assert_array_equal(
      folded[0, 0, 1], [20, 21, 30, 31, 60, 61, 70, 71])
  np.testing.assert_array_equal(visual.depth_to_space(folded), frame)


def test_space_to_depth_conv_equals_stride_2_6x6_conv():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 8, 8, 3)), jnp.float32)
  kernel = rng.normal(size=(3, 3, 4 * 3, 5)).astype(np.float32)
  folded = jax.lax.conv_general_dilated(
      visual.space_to_depth(x), kernel, (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  # The same weights as a 6x6 kernel over pixels, stride 2, padding 2.
  wide = np.zeros((6, 6, 3, 5), np.float32)
  for di in range(3):
    for dj in range(3):
      for r in range(2):
        for c in range(2):
          block = kernel[di, dj, (2 * r + c) * 3:(2 * r + c + 1) * 3]
          wide[2 * di + r, 2 * dj + c] = block
  strided = jax.lax.conv_general_dilated(
      x, wide, (2, 2), ((2, 2), (2, 2)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert folded.shape == strided.shape == (2, 4, 4, 5)
  np.testing.assert_allclose(folded, strided, rtol=1e-4, atol=1e-4)


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
  assert visual.count_params(params) == 959_220


# Which of PALETTE's frames each frame of a [3, 6] video shows (0: the zero
# frame): 8 distinct frames, repeats within and across clips.
PALETTE_INDEX = np.array([[0, 0, 1, 1, 2, 3],
                          [4, 4, 4, 5, 0, 0],
                          [2, 6, 6, 7, 7, 0]])


def _video_with_repeated_frames(seed=1):
  """A [3, 6, 8, 8, 1] uint8 video built from PALETTE_INDEX."""
  palette = np.random.default_rng(seed).integers(1, 256, (8, 8, 8, 1),
                                                 dtype=np.uint8)
  palette[0] = 0
  return palette[PALETTE_INDEX]


def test_count_distinct_frames():
  video = _video_with_repeated_frames()
  assert visual.count_distinct_frames(video) == 8
  assert visual.count_distinct_frames(video[:1]) == 4
  video[1, 0, 0, 0, 0] ^= 1  # One pixel makes a frame distinct.
  assert visual.count_distinct_frames(video) == 9
  assert visual.count_distinct_frames(video.astype(np.float32)) == 9


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_distinct_frames_groups_equal_frames(dtype):
  video = _video_with_repeated_frames().astype(dtype)
  frames = video.reshape(18, 8, 8, 1)
  representatives, group_of_frame, num_groups = jax.jit(
      visual.distinct_frames, static_argnums=1)(frames, 10)
  assert representatives.shape == (10,) and group_of_frame.shape == (18,)
  assert int(num_groups) == 8
  # Every frame reads a frame equal to it, and equal frames one group.
  np.testing.assert_array_equal(
      frames[np.asarray(representatives)[np.asarray(group_of_frame)]], frames)
  groups = np.asarray(group_of_frame).reshape(PALETTE_INDEX.shape)
  for index in range(8):
    assert len(set(groups[PALETTE_INDEX == index])) == 1, index
  assert sorted(set(groups.ravel())) == list(range(8))


def test_distinct_frames_never_merges_frames_whose_hashes_collide(
    monkeypatch):
  # Every hash equal: the frames stay in input order, and a frame equal to
  # an earlier but not the previous one starts a new group (a spent slot),
  # never a merge of different frames.
  monkeypatch.setattr(visual, "_hash_multipliers",
                      lambda width: np.zeros((2, width), np.uint32))
  frames = _video_with_repeated_frames().reshape(18, 8, 8, 1)
  representatives, group_of_frame, num_groups = visual.distinct_frames(
      frames, 18)
  np.testing.assert_array_equal(
      frames[np.asarray(representatives)[np.asarray(group_of_frame)]], frames)
  changes = 1 + np.count_nonzero(np.diff(PALETTE_INDEX.ravel()))
  assert int(num_groups) == changes == 11


@pytest.mark.parametrize("budget", [8, 10, 17])
def test_frame_budget_gives_the_same_features_and_gradients(budget):
  video = jnp.asarray(_video_with_repeated_frames())
  full = visual.VisualModel(**TINY)
  packed = full.clone(frame_budget=budget)
  params = full.init(jax.random.key(0), video)

  def features_and_grads(model):
    def loss(p):
      out = model.apply(p, video)
      return jnp.sum(jnp.sin(3 * out["features"])) + jnp.sum(out["context"])
    return (model.apply(params, video, method=model.features),
            jax.grad(loss)(params))

  want_features, want_grads = jax.jit(lambda: features_and_grads(full))()
  got_features, got_grads = jax.jit(lambda: features_and_grads(packed))()
  # Equal frames share their copy's features: the same numbers.
  np.testing.assert_allclose(got_features, want_features, rtol=1e-6,
                             atol=1e-6)
  for path, want in jax.tree_util.tree_leaves_with_path(want_grads):
    got = dict(jax.tree_util.tree_leaves_with_path(got_grads))[path]
    scale = float(np.abs(want).max())
    # The CNN is what the budget changes; the decoder is not in the loss.
    assert scale > 0 or "conv_layers" not in str(path), path
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale,
                               err_msg=str(path))


def test_frame_budget_overflow_gives_nan_not_dropped_frames():
  video = jnp.asarray(_video_with_repeated_frames())
  model = visual.VisualModel(**TINY, frame_budget=7)
  params = model.init(jax.random.key(0), video)
  features = model.apply(params, video, method=model.features)
  assert features.shape == (3, 6, TINY["frame_features"])
  assert np.all(np.isnan(features))
  assert np.all(np.isnan(model.apply(params, video)["context"]))


def test_render_frames_renders_a_random_subset_of_each_clip():
  video = _video(batch=3, time=6)
  full = visual.VisualModel(**TINY)
  subset = full.clone(render_frames=2)
  params = full.init(jax.random.key(0), video)
  want = full.apply(params, video)
  got = subset.apply(params, video, rngs={"render": jax.random.key(1)})
  index = np.asarray(got["frame_index"])
  assert got["frames"].shape == (3, 2, 8, 8, 1) and index.shape == (3, 2)
  assert np.all((index >= 0) & (index < 6))
  assert all(len(set(row)) == 2 for row in index)  # Distinct per clip.
  # The rendered frames are the full render's frames at those steps.
  np.testing.assert_allclose(
      got["frames"], np.take_along_axis(
          np.asarray(want["frames"]), index[:, :, None, None, None], axis=1),
      rtol=1e-5, atol=1e-6)
  for key in ("features", "context", "reconstruction"):
    np.testing.assert_array_equal(got[key], want[key])
  # Other keys choose other frames; over many draws every step is drawn
  # about equally often (the loss is an unbiased estimate).
  # Compiled once: 200 eager applies of the model took ~4 min.
  draw = jax.jit(lambda key: subset.apply(
      params, video, rngs={"render": key},
      method=lambda m, v: m(v)["frame_index"]))
  counts = np.zeros(6)
  for seed in range(200):
    np.add.at(counts, np.asarray(draw(jax.random.key(seed))).ravel(), 1)
  assert counts.sum() == 200 * 3 * 2
  assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def test_render_frames_needs_a_render_rng_and_a_positive_count():
  video = _video(batch=2, time=4)
  params = visual.VisualModel(**TINY).init(jax.random.key(0), video)
  # All frames (or more) is the plain render: no rng needed.
  out = visual.VisualModel(**TINY, render_frames=4).apply(params, video)
  assert out["frames"].shape == (2, 4, 8, 8, 1) and "frame_index" not in out
  with pytest.raises(Exception, match="render"):
    visual.VisualModel(**TINY, render_frames=2).apply(params, video)
  with pytest.raises(ValueError, match="render_frames must be >= 1"):
    visual.VisualModel(**TINY, render_frames=0).apply(
        params, video, rngs={"render": jax.random.key(0)})
