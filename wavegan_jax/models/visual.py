"""Stage 2: the visual model (video frames -> per-frame context).

Each frame [H, W, C] (scaled to [0, 1]) goes through a small 2-D CNN
(per level: 2x2 space-to-depth, then 3x3 conv + ReLU; then a dense layer and
a parameter-free LayerNorm) to a unit-RMS frame feature vector; a
bidirectional LSTM encoder over time gives a per-frame `context` [B, T, Dc];
an LSTM decoder reconstructs the frame features from the context, and a
`render` head (per level: 3x3 conv to 4x the channels, then 2x2
depth-to-space, i.e. a sub-pixel convolution; linear out) turns the
reconstructed features back into frames [B, T, H, W, C], trained towards
[0, 1] (clip them for display). The output is linear, not a sigmoid: with
mostly-black frames a sigmoid saturates at 0 early in training and the pixel
gradient vanishes (observed at small widths).

Why space-to-depth and sub-pixel convolutions: every convolution runs at the
lower resolution of its level (a 2x2 space-to-depth then a 3x3 conv is a
stride-2 6x6 conv; a conv then depth-to-space is a stride-2 transposed one),
so nothing is computed on wide full-resolution activations, there is no
pooling or nearest-neighbour upsampling, and no strided or transposed
convolution, all of which XLA:CPU runs slowly. At the defaults (batch 16, 32
frames of 32x32) this cut the visual train step on 2 shared CPU cores from
about 1.7 s (conv + avg-pool encoder; nearest-neighbour upsampling + conv
render head, most of the time, its gradient at 32x32x32 alone about 0.8 s)
to about 0.5 s.

Why a pixel loss: the frame features are learned, so a loss on the features
alone has a trivial minimum (constant features, reconstructed perfectly).
The stage-2 loss should be

  mean((reconstruction - stop_gradient(features)) ** 2)
  + mean((frames - frames_to_unit(video)) ** 2),

where the pixel term makes the features and the context carry the image.
Gradients of the pixel term reach the CNN through encoder, decoder and
render head.

Why a frame budget: about 44% of AV-digits frames are empty (all zero:
before the digit appears and after it is spoken), and the digit moves over
at most 5 x 5 pixel positions while it is shown, so a batch of 16 clips
(512 frames) holds about 128 distinct frames (156 at most in 2000 train
batches). The CNN treats frames independently, so with `frame_budget=K` it
runs on at most K distinct frames of the batch and every frame takes its
copy's features: the same numbers, for a fraction of the CNN's time
(docs/performance.md, section 3). The frames are grouped in the step itself
(two 32-bit hashes of each frame's bytes sort equal frames together;
neighbours are then compared exactly, so distinct frames are never
merged). The budget is static, so the
caller checks that a batch fits (`count_distinct_frames` on the host) and
runs a step compiled without it otherwise; a batch over the budget gives
NaN features, never silently dropped frames.

Parameter count (see `count_params`) at the defaults (32x32x1 frames,
conv (16, 32, 64), frame features 128, LSTM 128, context 64): 959,220.
"""

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wavegan_jax.models import lstm


def count_params(params) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


def space_to_depth(x: jax.Array) -> jax.Array:
  """Folds each 2x2 block into channels, [N, H, W, C] -> [N, H/2, W/2, 4C].

  Channel index (2 * row + col) * C + c holds pixel (2i + row, 2j + col, c).
  """
  n, h, w, c = x.shape
  x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // 2, w // 2, 4 * c)


def depth_to_space(x: jax.Array) -> jax.Array:
  """Inverse of `space_to_depth`, [N, H, W, 4C] -> [N, 2H, 2W, C]."""
  n, h, w, c4 = x.shape
  x = x.reshape(n, h, w, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, 2 * h, 2 * w, c4 // 4)


def count_distinct_frames(video) -> int:
  """Distinct frames (byte for byte) in a host batch [..., H, W, C]."""
  video = np.ascontiguousarray(video)
  frames = video.reshape((-1, int(np.prod(video.shape[-3:]))))
  return len({frame.tobytes() for frame in frames})


def _hash_multipliers(width: int) -> np.ndarray:
  """[2, width] odd uint32 multipliers of the two frame hashes (fixed)."""
  random = np.random.default_rng(20261126)
  return random.integers(0, 2 ** 31, (2, width), dtype=np.uint32) * 2 + 1


def distinct_frames(frames: jax.Array, budget: int):
  """Groups equal frames: which K frames to compute, and where each reads.

  Args:
    frames: [N, ...] frames of any dtype (compared by their bits).
    budget: K, how many distinct frames the caller computes.

  Returns:
    (representatives [K] int32: a frame index of each group, padded with
    frame 0 past the last group; group_of_frame [N] int32: each frame's
    group; num_groups: scalar int32, which may exceed K).
  """
  n = frames.shape[0]
  bits = frames.reshape(n, -1)
  if jnp.issubdtype(bits.dtype, jnp.floating):
    bits = jax.lax.bitcast_convert_type(
        bits.astype(jnp.float32), jnp.uint32)
  words = bits.astype(jnp.uint32)
  # Sums wrap modulo 2 ** 32: equal frames hash equal whatever the order.
  hashes = [jnp.sum(words * jnp.asarray(m), axis=1, dtype=jnp.uint32)
            for m in _hash_multipliers(bits.shape[1])]
  *_, order = jax.lax.sort((*hashes, jnp.arange(n, dtype=jnp.int32)),
                           num_keys=2)
  in_order = bits[order]
  # A group starts wherever a frame differs from the one before it: a hash
  # collision can only split a group (costing a slot), never merge two.
  starts = jnp.concatenate([
      jnp.ones((1,), bool), jnp.any(in_order[1:] != in_order[:-1], axis=1)])
  group_in_order = jnp.cumsum(starts, dtype=jnp.int32) - 1
  representatives = order[jnp.nonzero(starts, size=budget, fill_value=0)[0]]
  group_of_frame = jnp.zeros((n,), jnp.int32).at[order].set(group_in_order)
  return representatives, group_of_frame, group_in_order[-1] + 1


def frames_to_unit(video: jax.Array) -> jax.Array:
  """Scales frames to float32 in [0, 1].

  Args:
    video: integer frames in [0, 255] (e.g. uint8) or float frames already
      in [0, 1].

  Returns:
    float32 array shaped like `video`.
  """
  if jnp.issubdtype(video.dtype, jnp.integer):
    return video.astype(jnp.float32) / 255.0
  return video.astype(jnp.float32)


class VisualModel(nn.Module):
  """LSTM autoencoder over per-frame CNN features.

  Attributes:
    frame_size: frame height and width H = W (divisible by
      2 ** len(conv_features)).
    channels: colour channels C (1 for AV-digits).
    conv_features: channels of each CNN level (each halves H and W); the
      render head mirrors them.
    frame_features: F, width of the per-frame feature vector.
    lstm_features: hidden size of each LSTM direction.
    context_features: Dc, width of the per-frame context.
    num_lstm_layers: LSTM layers in the encoder and in the decoder.
    frame_budget: if set, the CNN runs on at most this many distinct
      frames of a call's batch, and equal frames share features (see the
      module docstring); a batch with more gives NaN features. Not part of
      the architecture: params are the same with or without it.
    render_frames: if set (and below T), `__call__` renders only this many
      frames of each clip, drawn at random (rng stream 'render'), for a
      pixel loss that estimates the all-frames one at a fraction of the
      render head's cost. Not part of the architecture either.
  """
  frame_size: int = 32
  channels: int = 1
  conv_features: Sequence[int] = (16, 32, 64)
  frame_features: int = 128
  lstm_features: int = 128
  context_features: int = 64
  num_lstm_layers: int = 1
  frame_budget: Optional[int] = None
  render_frames: Optional[int] = None

  def setup(self):
    levels = len(self.conv_features)
    if self.frame_size % 2 ** levels:
      raise ValueError(
          f"frame_size={self.frame_size} is not divisible by 2 ** "
          f"len(conv_features) = {2 ** levels}")
    self.conv_layers = [nn.Conv(c, (3, 3)) for c in self.conv_features]
    self.feature_projection = nn.Dense(self.frame_features)
    self.feature_norm = nn.LayerNorm(use_bias=False, use_scale=False)
    self.encoder_lstm = lstm.StackedLSTM(
        self.lstm_features, self.num_lstm_layers, bidirectional=True)
    self.context_projection = nn.Dense(self.context_features)
    self.decoder_lstm = lstm.StackedLSTM(
        self.lstm_features, self.num_lstm_layers, bidirectional=True)
    self.output_projection = nn.Dense(self.frame_features)
    bottom = self.frame_size // 2 ** levels
    self.render_projection = nn.Dense(
        bottom * bottom * self.conv_features[-1])
    # Each render level doubles H and W: a conv to 4x the channels of the
    # next (finer) level, then depth-to-space; the last one gives the frame.
    finer = tuple(reversed(self.conv_features))[1:] + (self.channels,)
    self.render_layers = [nn.Conv(4 * c, (3, 3)) for c in finer]

  def _check_video(self, video: jax.Array):
    expected = (self.frame_size, self.frame_size, self.channels)
    if video.ndim != 5 or tuple(video.shape[2:]) != expected:
      raise ValueError(
          f"VisualModel expects video [batch, time, {expected[0]}, "
          f"{expected[1]}, {expected[2]}], got shape {video.shape}")

  def features(self, video: jax.Array) -> jax.Array:
    """Per-frame CNN features, [B, T, H, W, C] -> [B, T, frame_features]."""
    self._check_video(video)
    batch, time = video.shape[:2]
    frames = frames_to_unit(video).reshape((batch * time,) + video.shape[2:])
    budget = self.frame_budget
    if budget is None or budget >= batch * time:
      return self._frame_features(frames).reshape(batch, time, -1)
    representatives, group_of_frame, num_groups = jax.lax.stop_gradient(
        distinct_frames(video.reshape(frames.shape), budget))
    x = self._frame_features(frames[representatives])[group_of_frame]
    x = jnp.where(num_groups > budget, jnp.nan, x)
    return x.reshape(batch, time, -1)

  def _frame_features(self, frames: jax.Array) -> jax.Array:
    """The CNN on frames [N, H, W, C] in [0, 1] -> [N, frame_features]."""
    x = frames
    for layer in self.conv_layers:
      x = nn.relu(layer(space_to_depth(x)))
    x = self.feature_projection(x.reshape(len(frames), -1))
    # Unit-RMS features: the feature-reconstruction loss has a fixed scale
    # (the CNN cannot inflate it while the pixel loss trains it).
    return self.feature_norm(x)

  def render(self, frame_features: jax.Array) -> jax.Array:
    """Frames from frame features, [B, T, F] -> [B, T, H, W, C] (linear)."""
    batch, time = frame_features.shape[:2]
    bottom = self.frame_size // 2 ** len(self.conv_features)
    x = nn.relu(self.render_projection(frame_features))
    x = x.reshape(batch * time, bottom, bottom, -1)
    for level, layer in enumerate(self.render_layers):
      x = depth_to_space(layer(x))
      if level < len(self.render_layers) - 1:
        x = nn.relu(x)  # The last level is linear: see the module docstring.
    return x.reshape((batch, time) + x.shape[1:])

  def encode(self, video: jax.Array, train: bool = False) -> jax.Array:
    """Per-frame context; call with `model.apply(params, v, method=...)`.

    Args:
      video: [B, T, H, W, C] frames (uint8 in [0, 255] or float in [0, 1]).
      train: unused (no dropout); kept for a uniform signature.

    Returns:
      context [B, T, context_features].
    """
    del train
    return self.context_projection(self.encoder_lstm(self.features(video)))

  def __call__(self, video: jax.Array, train: bool = False) -> dict:
    """Runs the autoencoder.

    Args:
      video: [B, T, H, W, C] frames (uint8 in [0, 255] or float in [0, 1]).
      train: unused (no dropout); kept for a uniform signature.

    Returns:
      dict with `features` [B, T, F], `context` [B, T, Dc],
      `reconstruction` [B, T, F] (decoded features) and `frames`
      [B, T, H, W, C] (rendered from the reconstruction; linear, trained
      towards the frames in [0, 1]). With `render_frames` = K < T, `frames`
      is [B, K, H, W, C] and `frame_index` [B, K] says which time steps
      they are (distinct, random per clip and call).
    """
    del train
    features = self.features(video)
    context = self.context_projection(self.encoder_lstm(features))
    reconstruction = self.output_projection(self.decoder_lstm(context))
    outputs = dict(features=features, context=context,
                   reconstruction=reconstruction)
    batch, time = reconstruction.shape[:2]
    if self.render_frames is None or self.render_frames >= time:
      return dict(outputs, frames=self.render(reconstruction))
    if self.render_frames < 1:
      raise ValueError(
          f"render_frames must be >= 1 (or None: all), got "
          f"{self.render_frames}")
    # The first K of a random order of each clip's time steps.
    order = jnp.argsort(
        jax.random.uniform(self.make_rng("render"), (batch, time)), axis=1)
    frame_index = order[:, :self.render_frames]
    chosen = jnp.take_along_axis(reconstruction, frame_index[..., None],
                                 axis=1)
    return dict(outputs, frames=self.render(chosen), frame_index=frame_index)
