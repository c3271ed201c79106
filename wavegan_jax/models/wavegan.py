"""The original WaveGAN generator and discriminator (Donahue et al., 2019).

Follows the official TensorFlow code (chrisdonahue/wavegan, wavegan.py):
  Generator: z [B, 100] -> dense -> [B, 16, 16d] -> ReLU -> five transposed
  convolutions (kernel 25, stride 4, 'SAME'), ReLU between, tanh out ->
  [B, 16384, C]. Longer slices start wider (dense to [16, 32d]) and add a
  sixth layer: stride 2 for 32768, stride 4 for 65536. Optional learned
  post-processing filter (a bias-free 'SAME' convolution after the tanh; 512
  taps in the paper).
  Discriminator: five stride-4 convolutions (kernel 25) d -> 16d with
  LeakyReLU(0.2), phase shuffle after the first four, a sixth stride-2 / -4
  layer to 32d for 32768 / 65536, flatten, dense -> one logit.

8192 samples (for 8 kHz data) is this codebase's addition: the generator's
dense layer makes [8, 16d] and the same five stride-4 layers follow; the
discriminator's five layers end at [8, 16d]. Every other layer matches 16384.

Kernels are glorot-uniform and biases zero, TensorFlow's layer defaults.
Batch normalisation (off by default, as in the paper) uses TensorFlow's
defaults (momentum 0.99, epsilon 1e-3) and the collection `batch_stats`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from wavegan_jax.models import activations
from wavegan_jax.models import conv

SLICE_LENGTHS = (8192, 16384, 32768, 65536)
UPSAMPLE_MODES = ("zeros", "nn")
# How the nn path's stride-1 convolutions extend the signal past its ends.
EDGE_PADDINGS = ("zeros", "reflect", "edge")
# Overlap-save DFTs on the wide layers with many windows, Winograd F(2, 7)
# on the other wide ones, direct on the narrow ones (conv.py); README
# Performance, section 1, times it beside 'winograd' alone.
DEFAULT_CONV_IMPL = "fourier"
_KERNEL_INIT = nn.initializers.glorot_uniform()


def _check_slice_len(slice_len):
  if slice_len not in SLICE_LENGTHS:
    raise ValueError(f"slice_len must be one of {SLICE_LENGTHS}, got "
                     f"{slice_len!r}")


def generator_layout(slice_len, dim, num_channels):
  """The generator's shape plan.

  Args:
    slice_len: output samples, one of SLICE_LENGTHS.
    dim: model width d.
    num_channels: audio channels of the output.

  Returns:
    (dense_length, dense_channels, [(features, stride), ...] per layer).
  """
  _check_slice_len(slice_len)
  if slice_len in (8192, 16384):
    widths = [8 * dim, 4 * dim, 2 * dim, dim, num_channels]
    strides = [4] * 5
    return slice_len // 1024, 16 * dim, list(zip(widths, strides))
  widths = [16 * dim, 8 * dim, 4 * dim, 2 * dim, dim, num_channels]
  strides = [4] * 5 + [2 if slice_len == 32768 else 4]
  return 16, 32 * dim, list(zip(widths, strides))


def discriminator_layout(slice_len, dim):
  """The discriminator's [(features, stride), ...] per convolution."""
  _check_slice_len(slice_len)
  layers = [(dim * 2**i, 4) for i in range(5)]
  if slice_len == 32768:
    layers.append((32 * dim, 2))
  elif slice_len == 65536:
    layers.append((32 * dim, 4))
  return layers


def phase_shuffle(x, rng, rad):
  """Shifts the whole minibatch by one random k in [-rad, rad] samples.

  As the official `apply_phaseshuffle`: output[:, i] = x[:, i - k] with
  reflect padding at the ends (no edge repeat), the same k for every example.

  Args:
    x: [batch, length, channels], length > rad.
    rng: a PRNG key.
    rad: the largest shift; 0 returns x unchanged.

  Returns:
    The shifted array, same shape as x.
  """
  if rad == 0:
    return x
  if x.shape[1] <= rad:
    raise ValueError(f"phase_shuffle: length {x.shape[1]} must exceed the "
                     f"radius {rad} for reflect padding")
  shift = jax.random.randint(rng, (), -rad, rad + 1)
  padded = jnp.pad(x, ((0, 0), (rad, rad), (0, 0)), mode="reflect")
  return jax.lax.dynamic_slice_in_dim(padded, rad - shift, x.shape[1], axis=1)


def minibatch_stddev(h, group_size):
  """Appends the minibatch standard deviation as one more channel.

  As ProGAN (Karras et al., 2018): the batch is cut into groups of
  min(group_size, batch) examples (example b is in group b % (batch / size));
  each feature's standard deviation over its group, averaged over positions
  and channels, becomes a constant channel of every member. A critic that
  sees how alike a batch is can punish a generator that drops modes.

  Args:
    h: [batch, length, channels] activations.
    group_size: examples per group, >= 1.

  Returns:
    [batch, length, channels + 1].
  """
  batch = h.shape[0]
  size = min(group_size, batch)
  if batch % size:
    raise ValueError(f"minibatch_stddev: batch {batch} must split into groups "
                     f"of {size} (minibatch_std_group={group_size})")
  groups = h.reshape(size, batch // size, *h.shape[1:])
  spread = jnp.mean(jnp.sqrt(jnp.var(groups, axis=0) + 1e-8), axis=(1, 2))
  channel = jnp.broadcast_to(jnp.tile(spread, size)[:, None, None],
                             h.shape[:2] + (1,))
  return jnp.concatenate([h, channel], axis=-1)


def batch_norm(name, train=None, dtype=None):
  """The official code's batch norm (TensorFlow's momentum and epsilon).

  With train None, use_running_average is left to the call; dtype is the
  output's (None: promoted from the input and the float32 params).
  """
  return nn.BatchNorm(use_running_average=None if train is None else not train,
                      momentum=0.99, epsilon=1e-3, dtype=dtype, name=name)


def check_dc_block_len(length: int) -> None:
  if length != 0 and (length < 3 or length % 2 == 0):
    raise ValueError(f"dc_block_len must be 0 (off) or an odd number >= 3, "
                     f"got {length}")


def moving_average(x: jax.Array, length: int) -> jax.Array:
  """Centred mean of `length` samples along axis 1 of [B, N, C], the ends
  padded with their edge values (so a constant stays itself)."""
  half = length // 2
  padded = jnp.pad(x, ((0, 0), (half, half), (0, 0)), mode="edge")
  total = jax.lax.reduce_window(padded, 0.0, jax.lax.add, (1, length, 1),
                                (1, 1, 1), "VALID")
  return total / length


def dc_block_filter(x: jax.Array, length: int) -> jax.Array:
  """x [B, N, C] minus its moving average taken twice: a linear-phase
  high-pass (1 - sinc^2 of f * length / sample_rate) that removes a
  constant exactly and passes speech (from 2 sample_rate / length up:
  within 2%)."""
  return x - moving_average(moving_average(x, length), length)


def check_end_fade_len(length: int, slice_len: int) -> None:
  if not 0 <= length <= slice_len:
    raise ValueError(f"end_fade_len must be in [0, slice_len={slice_len}], "
                     f"got {length}")


def end_fade(x: jax.Array, length: int) -> jax.Array:
  """x [B, N, C] with its last `length` samples faded to zero by a falling
  half-Hann (the first faded sample keeps most of its level, the last is
  0)."""
  ramp = 0.5 + 0.5 * jnp.cos(jnp.pi * jnp.arange(1, length + 1) / length)
  gain = jnp.concatenate([jnp.ones(x.shape[1] - length), ramp])
  return x * gain[None, :, None].astype(x.dtype)


class WaveGANGenerator(nn.Module):
  """z [B, latent] -> waveform [B, slice_len, num_channels] in [-1, 1].

  Attributes:
    dim: model width d (64 in the paper).
    slice_len: output samples, one of SLICE_LENGTHS.
    num_channels: audio channels.
    kernel_len: convolution taps (25).
    upsample: 'zeros' (transposed convolutions) or 'nn' (nearest-neighbour
      upsampling then a stride-1 convolution; same parameter shapes),
      computed as one transposed convolution on the short input
      (`conv.NNUpsampleConv1D`; with edge_padding 'zeros').
    use_batchnorm: batch normalisation after the dense and hidden layers.
    post_proc_filter_len: taps of the learned post-processing filter; 0
      disables it (512 is the paper's).
    conv_impl: 'auto', 'fourier', 'winograd', 'fast' or 'reference' (see
      conv.py); the parameters are the same.
    compute_dtype: 'float32' or 'bfloat16' (for GPU / TPU): the dtype of
      the activations and products; params stay float32, the waveform is
      returned as float32.
    activation: 'relu' (the paper's) or 'snake' (`activations.Snake`, a
      learned alpha per channel) after the dense and hidden layers.
    dc_block_len: 0 (off), or an odd L >= 3: `dc_block_filter` as a
      post-filter (not in the paper), so what is heard (exports,
      evaluation, previews) has none of the offsets and slow drifts below
      sample_rate / L (40 Hz for 201 at 8 kHz) that no one hears yet the
      silence measure reads as sound (runs 52-54). Training's critic scores
      the unfiltered output (`post_filter=False`): with the filter inside the
      critic's view the generator saturated (run 55). Output can exceed
      [-1, 1] by the offset removed.
    end_fade_len: 0 (off), or the last N samples faded to zero (`end_fade`),
      a post-filter like dc_block_len: the zero-padded convolutions leave
      a click of nearly the same shape in every clip's last ~25 ms (-32
      dBFS at 8 kHz, run 57) where real clips are silent.
    edge_padding: with upsample='nn', what the stride-1 convolutions see
      past the clip's ends: 'zeros' (SAME), 'reflect' (the signal mirrored
      without repeating the edge sample, as MelGAN's generator pads) or
      'edge' (the end sample repeated). Zeros make the ends unlike the
      middle to every layer, the cause of the end click that
      end_fade_len hides; the others need a retrain.
  """
  dim: int = 64
  slice_len: int = 16384
  num_channels: int = 1
  kernel_len: int = 25
  upsample: str = "zeros"
  use_batchnorm: bool = False
  post_proc_filter_len: int = 0
  conv_impl: str = DEFAULT_CONV_IMPL
  compute_dtype: str = "float32"
  activation: str = "relu"
  dc_block_len: int = 0
  end_fade_len: int = 0
  edge_padding: str = "zeros"

  @nn.compact
  def __call__(self, z, train=False, post_filter=True):
    """Generates waveforms.

    Args:
      z: [batch, latent_dim] latent vectors.
      train: batch statistics (True) or running averages (False) in batch
        normalisation; unused without it.
      post_filter: apply the `dc_block_len` and `end_fade_len` post-filters
        (False: the output the critic scores in training).

    Returns:
      [batch, slice_len, num_channels] float waveforms.
    """
    if z.ndim != 2:
      raise ValueError(f"WaveGANGenerator: z must be [batch, latent_dim], got "
                       f"shape {z.shape}")
    if self.upsample not in UPSAMPLE_MODES:
      raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got "
                       f"{self.upsample!r}")
    if self.edge_padding not in EDGE_PADDINGS:
      raise ValueError(f"edge_padding must be one of {EDGE_PADDINGS}, got "
                       f"{self.edge_padding!r}")
    if self.edge_padding != "zeros" and self.upsample != "nn":
      raise ValueError(f"edge_padding={self.edge_padding!r} needs "
                       f"upsample='nn' (the transposed convolutions of "
                       f"'zeros' have no input padding to choose)")
    activations.check_activation(self.activation,
                                 "WaveGANGenerator: activation")
    check_dc_block_len(self.dc_block_len)
    check_end_fade_len(self.end_fade_len, self.slice_len)
    length, channels, layers = generator_layout(
        self.slice_len, self.dim, self.num_channels)
    dtype = conv.compute_dtype(self.compute_dtype)
    x = nn.Dense(length * channels, kernel_init=_KERNEL_INIT, dtype=dtype,
                 name="z_project")(z.astype(dtype))
    x = x.reshape(z.shape[0], length, channels)
    if self.use_batchnorm:
      x = batch_norm("z_project_bn", train, dtype)(x)
    x = activations.activation(self.activation, "z_project")(x)
    for i, (features, stride) in enumerate(layers):
      name = f"upconv_{i}"
      if self.upsample == "zeros":
        x = conv.ConvTranspose1D(features, self.kernel_len, stride, "SAME",
                                 kernel_init=_KERNEL_INIT, impl=self.conv_impl,
                                 name=name)(x)
      elif self.edge_padding == "zeros":
        # The repeat and the convolution in one transposed convolution.
        x = conv.NNUpsampleConv1D(features, self.kernel_len, stride,
                                  kernel_init=_KERNEL_INIT,
                                  impl=self.conv_impl, name=name)(x)
      else:
        # SAME's split for stride 1 over the padded repeat, then VALID.
        x = jnp.repeat(x, stride, axis=1)
        left = (self.kernel_len - 1) // 2
        x = jnp.pad(x, ((0, 0), (left, self.kernel_len - 1 - left), (0, 0)),
                    mode=self.edge_padding)
        x = conv.Conv1D(features, self.kernel_len, 1, "VALID",
                        kernel_init=_KERNEL_INIT, impl=self.conv_impl,
                        name=name)(x)
      if i < len(layers) - 1:
        if self.use_batchnorm:
          x = batch_norm(f"{name}_bn", train, dtype)(x)
        x = activations.activation(self.activation, name)(x)
    x = jnp.tanh(x)
    if self.post_proc_filter_len:
      x = conv.Conv1D(self.num_channels, self.post_proc_filter_len, 1, "SAME",
                      use_bias=False, kernel_init=_KERNEL_INIT,
                      impl=self.conv_impl, name="pp_filter")(x)
    x = x.astype(jnp.float32)
    if self.dc_block_len and post_filter:
      x = dc_block_filter(x, self.dc_block_len)
    if self.end_fade_len and post_filter:
      x = end_fade(x, self.end_fade_len)
    return x


class WaveGANDiscriminator(nn.Module):
  """Waveform [B, slice_len, C] -> WGAN critic logits [B].

  Attributes:
    dim: model width d (64).
    slice_len: input samples, one of SLICE_LENGTHS.
    kernel_len: convolution taps (25).
    phaseshuffle_rad: phase shuffle radius n (2); 0 disables it.
    use_batchnorm: batch normalisation after convolutions 1 and up.
    minibatch_std_group: > 0 appends the minibatch standard deviation over
      groups of this many examples to the last convolution's output
      (`minibatch_stddev`; not in the paper; the gradient penalty then
      holds cross-example terms, see `losses.gradient_penalty`); 0 leaves
      the critic as the paper's.
    conv_impl: 'auto', 'fourier', 'winograd', 'fast' or 'reference' (see
      conv.py).
    compute_dtype: 'float32' or 'bfloat16' (see WaveGANGenerator); logits
      and features are returned as float32.
  """
  dim: int = 64
  slice_len: int = 16384
  kernel_len: int = 25
  phaseshuffle_rad: int = 2
  use_batchnorm: bool = False
  minibatch_std_group: int = 0
  conv_impl: str = DEFAULT_CONV_IMPL
  compute_dtype: str = "float32"

  @nn.compact
  def __call__(self, x, rng=None, condition=None, return_features=False,
               train=True):
    """Scores waveforms.

    Args:
      x: [batch, slice_len, channels] waveforms.
      rng: PRNG key for phase shuffle (one shift per shuffled layer for the
        whole batch); None disables phase shuffle (evaluation).
      condition: optional projection conditioning (Miyato & Koyama, 2018):
        [batch, Dc] for one vector per example, or [batch, Tc, Dc] for a
        sequence (e.g. a video context at frame rate), linearly resampled to
        the last convolution's length. logits += sum over positions and
        channels of h * Dense(condition).
      return_features: also return the hidden activations.
      train: with batch normalisation, batch statistics (True, the official
        discriminator's only mode) or running averages.

    Returns:
      logits [batch]; with return_features, (logits, features) where
      features lists each convolution block's output after its LeakyReLU
      (before phase shuffle), for feature matching.
    """
    if x.ndim != 3 or x.shape[1] != self.slice_len:
      raise ValueError(f"WaveGANDiscriminator: x must be [batch, "
                       f"{self.slice_len}, channels], got shape {x.shape}")
    group = self.minibatch_std_group
    if isinstance(group, bool) or not isinstance(group, int) or group < 0:
      raise ValueError(f"WaveGANDiscriminator: minibatch_std_group must be an "
                       f"int >= 0, got {group!r}")
    layers = discriminator_layout(self.slice_len, self.dim)
    shuffle_rngs = (None if rng is None or not self.phaseshuffle_rad
                    else jax.random.split(rng, 4))
    dtype = conv.compute_dtype(self.compute_dtype)
    features = []
    h = x.astype(dtype)
    for i, (width, stride) in enumerate(layers):
      h = conv.Conv1D(width, self.kernel_len, stride, "SAME",
                      kernel_init=_KERNEL_INIT, impl=self.conv_impl,
                      name=f"downconv_{i}")(h)
      if self.use_batchnorm and i > 0:
        h = batch_norm(f"downconv_{i}_bn", train, dtype)(h)
      h = nn.leaky_relu(h, 0.2)
      features.append(h.astype(jnp.float32))
      if i < 4 and shuffle_rngs is not None:
        h = phase_shuffle(h, shuffle_rngs[i], self.phaseshuffle_rad)
    scored = minibatch_stddev(h, group) if group else h
    logits = nn.Dense(1, kernel_init=_KERNEL_INIT, dtype=dtype,
                      name="output")(
                          scored.reshape(scored.shape[0], -1))[:, 0]
    if condition is not None:
      logits = logits + self._projection(h, condition.astype(dtype), dtype)
    logits = logits.astype(jnp.float32)
    if return_features:
      return logits, features
    return logits

  def _projection(self, h, condition, dtype):
    """sum(h * Dense(condition)) per example, the projection term."""
    batch, length, width = h.shape
    if condition.ndim not in (2, 3) or condition.shape[0] != batch:
      raise ValueError(f"WaveGANDiscriminator: condition must be [{batch}, Dc] "
                       f"or [{batch}, Tc, Dc], got shape {condition.shape}")
    if condition.ndim == 3:
      condition = jax.image.resize(
          condition, (batch, length, condition.shape[-1]), method="linear")
    projected = nn.Dense(width, use_bias=False, kernel_init=_KERNEL_INIT,
                         dtype=dtype, name="condition_projection")(condition)
    if projected.ndim == 2:
      projected = projected[:, None, :]
    return jnp.sum(h * projected, axis=(1, 2))


def count_params(params) -> int:
  """Total number of scalars in a parameter pytree."""
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))

