"""SpecGAN: a DCGAN over normalised log-magnitude spectrograms (Donahue et al.,
2019), inverted to audio with Griffin-Lim.

Follows the official TensorFlow code (chrisdonahue/wavegan, specgan.py and
train_specgan.py):
  Forward transform (t_to_f): STFT with n_fft 256, periodic Hann window,
  frames every `hop` samples from sample 0 with the end zero-padded
  (pad_end=True), so slice_len / hop = 128 frames; log(|X| + 1e-6); the
  Nyquist bin dropped (128 bins); each bin normalised by the training set's
  moments, divided by 3 standard deviations and clipped to [-1, 1].
  Inverse (f_to_t): undo the normalisation, exp, a zero Nyquist bin, then 16
  Griffin-Lim iterations from zero phase.
  Generator: z [B, 100] -> dense -> [B, 4, 4, 16d] -> ReLU -> five 5x5
  stride-2 transposed convolutions (8d, 4d, 2d, d, 1), ReLU between, tanh
  out -> [B, 128, 128, 1] (frames x bins).
  Discriminator: five 5x5 stride-2 convolutions d -> 16d with LeakyReLU(0.2),
  flatten, dense -> one logit. No phase shuffle.

The official code runs 16384 samples at hop 128; this codebase also runs 8192
samples (8 kHz data) at hop 64, so the spectrogram is 128 x 128 for both.

The strided layers keep flax's ConvTranspose / Conv parameters and numbers
but run as stride-1 convolutions on interleaved or phase-split pixels
(`SubpixelConvTranspose`, `PhaseSplitConv`): XLA:CPU's dilated convolutions
multiply the inserted zeros, and the critic's gradient penalty differentiates
through them twice.

Kernels are glorot-uniform and biases zero, TensorFlow's layer defaults.
Batch normalisation (off by default) uses TensorFlow's defaults (momentum
0.99, epsilon 1e-3) and the collection `batch_stats`.
"""

from typing import Iterable, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from wavegan_jax import spectral
from wavegan_jax.models.wavegan import batch_norm

SPEC_BINS = 128
N_FFT = 256
LOG_EPS = 1e-6
CLIP_STDS = 3.0
SLICE_LENGTHS = (8192, 16384)
_MIN_STD = 1e-6
# Samples whose summed squared window is below this carry no information
# (only sample 0, where the periodic Hann window is exactly zero) and are 0.
_MIN_WINDOW_SUM = 1e-10
_KERNEL_INIT = nn.initializers.glorot_uniform()


def hop_length(slice_len: int) -> int:
  """Samples between frames: slice_len // 128 (64 for 8192, 128 for 16384)."""
  if slice_len not in SLICE_LENGTHS:
    raise ValueError(f"slice_len must be one of {SLICE_LENGTHS}, got "
                     f"{slice_len!r}")
  return slice_len // SPEC_BINS


def stft(audio: jnp.ndarray, hop: int) -> jnp.ndarray:
  """The official framing: Hann-windowed frames from sample 0, end padded.

  Args:
    audio: [batch, samples] real waveform.
    hop: samples between frames.

  Returns:
    Complex [batch, ceil(samples / hop), N_FFT // 2 + 1].
  """
  num_frames = -(-audio.shape[1] // hop)
  pad = (num_frames - 1) * hop + N_FFT - audio.shape[1]
  padded = jnp.pad(audio, ((0, 0), (0, pad)))
  return spectral.stft(padded, N_FFT, hop, center=False)


def istft(spec: jnp.ndarray, hop: int, num_samples: int) -> jnp.ndarray:
  """Weighted overlap-add inverse of `stft`.

  Each frame's inverse FFT is windowed again, overlap-added, and divided by
  the summed squared window. Sample 0 is 0: the periodic Hann window is zero
  there, so no frame holds it. Samples whose summed squared window is tiny
  (the first ~10 with hop 64) amplify float32 rounding in the spectrum.

  Args:
    spec: complex [batch, frames, N_FFT // 2 + 1].
    hop: samples between frames.
    num_samples: output length; the overlap-add is cut or zero-padded to it.

  Returns:
    float32 [batch, num_samples].
  """
  if spec.ndim != 3 or spec.shape[-1] != N_FFT // 2 + 1:
    raise ValueError(f"istft expects spec [batch, frames, {N_FFT // 2 + 1}], "
                     f"got shape {spec.shape}")
  batch, num_frames = spec.shape[:2]
  window = scipy.signal.get_window("hann", N_FFT, fftbins=True)
  frames = (jnp.fft.irfft(spec, n=N_FFT, axis=-1).astype(jnp.float32) *
            window.astype(np.float32))
  length = (num_frames - 1) * hop + N_FFT
  starts = np.arange(num_frames)[:, None] * hop
  indices = (starts + np.arange(N_FFT)[None, :]).reshape(-1)
  if N_FFT % hop == 0:
    # Shift-and-add of hop-sized blocks: no scatter (slow on XLA:CPU).
    blocks_per_frame = N_FFT // hop
    blocks = frames.reshape(batch, num_frames, blocks_per_frame, hop)
    summed = sum(
        jnp.pad(blocks[:, :, k], ((0, 0), (k, blocks_per_frame - 1 - k),
                                  (0, 0)))
        for k in range(blocks_per_frame)).reshape(batch, length)
  else:
    summed = jnp.zeros((batch, length), jnp.float32).at[:, indices].add(
        frames.reshape(batch, -1))
  # The window normaliser is data-independent: a NumPy constant.
  window_sum = np.zeros(length, np.float64)
  np.add.at(window_sum, indices, np.tile(window**2, num_frames))
  safe = window_sum > _MIN_WINDOW_SUM
  scale = np.where(safe, 1.0 / np.where(safe, window_sum, 1.0), 0.0)
  audio = summed * scale.astype(np.float32)
  if num_samples <= length:
    return audio[:, :num_samples]
  return jnp.pad(audio, ((0, 0), (0, num_samples - length)))


def griffin_lim(magnitude: jnp.ndarray, hop: int, num_samples: int,
                iterations: int = 16) -> jnp.ndarray:
  """Griffin-Lim phase recovery from zero phase, as the official code.

  Iterates on the full overlap-add length ((frames - 1) * hop + N_FFT), whose
  unpadded STFT has exactly `frames` frames, and cuts the result at the end.

  Args:
    magnitude: [batch, frames, N_FFT // 2 + 1] STFT magnitudes (Nyquist
      included).
    hop: samples between frames.
    num_samples: output length.
    iterations: rounds of {inverse, transform, keep the phase}.

  Returns:
    float32 [batch, num_samples].
  """
  magnitude = jnp.asarray(magnitude, jnp.float32)
  full_length = (magnitude.shape[1] - 1) * hop + N_FFT
  target = magnitude.astype(jnp.complex64)

  def refine(_, spec):
    estimate = spectral.stft(istft(spec, hop, full_length), N_FFT, hop,
                             center=False)
    phase = estimate / jnp.maximum(jnp.abs(estimate), 1e-8)
    return target * phase

  spec = jax.lax.fori_loop(0, iterations, refine, target)
  return istft(spec, hop, num_samples)


def log_magnitude(audio: jnp.ndarray, slice_len: int) -> jnp.ndarray:
  """log(|STFT| + LOG_EPS) without the Nyquist bin (the official t_to_f).

  Args:
    audio: [batch, slice_len] or [batch, slice_len, 1] waveforms.
    slice_len: one of SLICE_LENGTHS.

  Returns:
    float32 [batch, 128 frames, 128 bins].
  """
  hop = hop_length(slice_len)
  if audio.ndim == 3 and audio.shape[-1] == 1:
    audio = audio[..., 0]
  if audio.ndim != 2 or audio.shape[1] != slice_len:
    raise ValueError(f"log_magnitude expects audio [batch, {slice_len}] or "
                     f"[batch, {slice_len}, 1], got shape {audio.shape}")
  spec = stft(jnp.asarray(audio, jnp.float32), hop)[..., :-1]
  return jnp.log(jnp.abs(spec) + LOG_EPS)


def normalize(log_mag, mean, std):
  """Per-bin standardisation in units of CLIP_STDS, clipped to [-1, 1]."""
  return jnp.clip((log_mag - mean) / std / CLIP_STDS, -1.0, 1.0)


def denormalize(normalized, mean, std):
  """The inverse of `normalize` inside the clip range."""
  return normalized * CLIP_STDS * std + mean


def moments(
    log_mag_batches: Iterable[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
  """Per-bin mean and standard deviation over all examples and frames.

  Args:
    log_mag_batches: iterable of [batch, frames, 128] log magnitudes.

  Returns:
    (mean, std), float32 [128] each; std is floored at 1e-6 so that
    normalising never divides by zero.
  """
  total = np.zeros(SPEC_BINS, np.float64)
  total_sq = np.zeros(SPEC_BINS, np.float64)
  count = 0
  for batch in log_mag_batches:
    batch = np.asarray(batch, np.float64)
    if batch.ndim != 3 or batch.shape[-1] != SPEC_BINS:
      raise ValueError(f"moments expects [batch, frames, {SPEC_BINS}] log "
                       f"magnitudes, got shape {batch.shape}")
    rows = batch.reshape(-1, SPEC_BINS)
    total += rows.sum(axis=0)
    total_sq += np.square(rows).sum(axis=0)
    count += rows.shape[0]
  if not count:
    raise ValueError("moments needs at least one frame, got an empty iterable")
  mean = total / count
  variance = np.maximum(total_sq / count - np.square(mean), 0.0)
  std = np.maximum(np.sqrt(variance), _MIN_STD)
  return mean.astype(np.float32), std.astype(np.float32)


def spectrogram_to_audio(normalized, mean, std, slice_len: int,
                         iterations: int = 16) -> jnp.ndarray:
  """Normalised spectrograms -> waveforms (the official f_to_t).

  Args:
    normalized: [batch, 128, 128] or [batch, 128, 128, 1] in [-1, 1].
    mean: [128] per-bin log-magnitude mean.
    std: [128] per-bin log-magnitude standard deviation.
    slice_len: one of SLICE_LENGTHS.
    iterations: Griffin-Lim iterations.

  Returns:
    float32 [batch, slice_len].
  """
  hop = hop_length(slice_len)
  if normalized.ndim == 4 and normalized.shape[-1] == 1:
    normalized = normalized[..., 0]
  if normalized.shape[1:] != (SPEC_BINS, SPEC_BINS):
    raise ValueError(f"spectrogram_to_audio expects [batch, {SPEC_BINS}, "
                     f"{SPEC_BINS}] or [batch, {SPEC_BINS}, {SPEC_BINS}, 1], "
                     f"got shape {normalized.shape}")
  magnitude = jnp.exp(denormalize(normalized, mean, std))
  magnitude = jnp.pad(magnitude, ((0, 0), (0, 0), (0, 1)))
  return griffin_lim(magnitude, hop, slice_len, iterations)


def _lax_same_transpose_padding(kernel_size, stride):
  """The left pad of lax.conv_transpose's 'SAME' over the dilated input."""
  pad_len = kernel_size + stride - 2
  return kernel_size - 1 if stride > kernel_size - 1 else -(-pad_len // 2)


def subpixel_kernel(kernel, stride):
  """A [k, k, Cin, Cout] transposed-convolution kernel as one stride-1 kernel.

  Output pixel (stride * m + p) of lax.conv_transpose ('SAME', kernel not
  flipped) sums input pixels m + d with taps t = stride * d + pad - p. Every
  phase p's taps, gathered on the common offsets d, make a small kernel
  whose output channels are (phase_h, phase_w, Cout); `subpixel_upsample`
  interleaves them. Same numbers as the dilated convolution without its
  multiplications by the inserted zeros (4x the work at stride 2).

  Returns:
    (kernel [n, n, Cin, stride * stride * Cout], (offset_low, offset_high)).
  """
  size = kernel.shape[0]
  pad = _lax_same_transpose_padding(size, stride)
  offsets = {}
  for phase in range(stride):
    for tap in range(size):
      if (phase + tap - pad) % stride == 0:
        offsets[(phase, (phase + tap - pad) // stride)] = tap
  gathered, (low, high) = _gather_phase_taps(kernel, stride, offsets)
  n = high - low + 1
  # -> [n, n, Cin, phase_h, phase_w, Cout]
  combined = gathered.transpose(1, 3, 4, 0, 2, 5).reshape(
      n, n, kernel.shape[2], stride * stride * kernel.shape[3])
  return combined, (low, high)


def _gather_phase_taps(kernel, stride, offsets):
  """[k, k, Cin, Cout] -> [phase_h, n, phase_w, n, Cin, Cout] by `offsets`.

  Args:
    kernel: [k, k, Cin, Cout].
    stride: number of phases per axis.
    offsets: {(phase, offset): tap}; missing pairs are zero taps.

  Returns:
    (gathered, (offset_low, offset_high)), n = offset_high - offset_low + 1.
  """
  size = kernel.shape[0]
  low = min(d for _, d in offsets)
  high = max(d for _, d in offsets)
  # taps[phase, d - low]: the kernel tap, or `size` for a zero row.
  taps = np.full((stride, high - low + 1), size)
  for (phase, d), tap in offsets.items():
    taps[phase, d - low] = tap
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
  return padded[taps[:, :, None, None], taps[None, None, :, :]], (low, high)


def subpixel_upsample(x, kernel, bias, stride):
  """lax.conv_transpose(x, kernel, (stride, stride), 'SAME') + bias, fast.

  Args:
    x: [batch, height, width, Cin].
    kernel: [k, k, Cin, Cout] (flax ConvTranspose's layout).
    bias: [Cout].
    stride: upsampling factor.

  Returns:
    [batch, stride * height, stride * width, Cout].
  """
  combined, (low, high) = subpixel_kernel(kernel, stride)
  y = jax.lax.conv_general_dilated(
      x, combined.astype(x.dtype), (1, 1), [(-low, high), (-low, high)],
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  batch, height, width, _ = x.shape
  cout = kernel.shape[3]
  y = y.reshape(batch, height, width, stride, stride, cout)
  y = y.transpose(0, 1, 3, 2, 4, 5).reshape(
      batch, stride * height, stride * width, cout)
  return y + bias


class _Strided2D(nn.Module):
  """A strided 2-D layer with flax Conv / ConvTranspose's parameters
  (kernel [k, k, Cin, Cout], glorot-uniform; bias [Cout], zeros)."""
  features: int
  kernel_size: int
  stride: int = 2

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", _KERNEL_INIT,
                        (self.kernel_size, self.kernel_size, x.shape[-1],
                         self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return self.run(x, kernel, bias, self.stride)

  def run(self, x, kernel, bias, stride):
    raise NotImplementedError


class SubpixelConvTranspose(_Strided2D):
  """flax ConvTranspose (strides s, 'SAME') with the same parameters, run as
  one stride-1 convolution and a pixel interleave (`subpixel_upsample`)."""

  def run(self, x, kernel, bias, stride):
    return subpixel_upsample(x, kernel, bias, stride)


def phase_split_kernel(kernel, stride, pad):
  """A [k, k, Cin, Cout] strided-convolution kernel for phase-split input.

  Input pixel stride * m + t - pad feeds output pixel m through tap t;
  written as stride * (m + d) + q it is pixel m + d of input phase q. The
  taps, gathered on the offsets d for each phase, make a stride-1 kernel
  over the (phase_h, phase_w, Cin) channels of `space_to_depth`'s output.

  Returns:
    (kernel [n, n, stride * stride * Cin, Cout], (offset_low, offset_high)).
  """
  offsets = {}
  for tap in range(kernel.shape[0]):
    d, q = divmod(tap - pad, stride)
    offsets[(q, d)] = tap
  gathered, (low, high) = _gather_phase_taps(kernel, stride, offsets)
  n = high - low + 1
  # -> [n, n, phase_h, phase_w, Cin, Cout]
  combined = gathered.transpose(1, 3, 0, 2, 4, 5).reshape(
      n, n, stride * stride * kernel.shape[2], kernel.shape[3])
  return combined, (low, high)


def strided_conv(x, kernel, bias, stride):
  """flax Conv (strides s, 'SAME') + bias as space-to-depth then a stride-1
  convolution: the same numbers, and a gradient without the dilated
  (mostly zero) convolutions XLA:CPU runs slowly.

  Args:
    x: [batch, height, width, Cin], height and width divisible by stride.
    kernel: [k, k, Cin, Cout] (flax Conv's layout).
    bias: [Cout].
    stride: downsampling factor.

  Returns:
    [batch, height / stride, width / stride, Cout].
  """
  batch, height, width, cin = x.shape
  if height % stride or width % stride:
    raise ValueError(f"strided_conv needs height and width divisible by "
                     f"{stride}, got shape {x.shape}")
  size = kernel.shape[0]
  out = height // stride
  pad = max((out - 1) * stride + size - height, 0) // 2
  combined, (low, high) = phase_split_kernel(kernel, stride, pad)
  phases = x.reshape(batch, height // stride, stride, width // stride, stride,
                     cin).transpose(0, 1, 3, 2, 4, 5).reshape(
                         batch, height // stride, width // stride,
                         stride * stride * cin)
  y = jax.lax.conv_general_dilated(
      phases, combined.astype(x.dtype), (1, 1), [(-low, high), (-low, high)],
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + bias


class PhaseSplitConv(_Strided2D):
  """flax Conv (strides s, 'SAME') with the same parameters, run as
  `strided_conv`."""

  def run(self, x, kernel, bias, stride):
    return strided_conv(x, kernel, bias, stride)


class SpecGANGenerator(nn.Module):
  """z [B, latent] -> spectrogram [B, 128, 128, 1] or audio [B, slice_len, 1].

  The parameters hold `log_magnitude_mean` and `log_magnitude_std` ([128];
  zeros and ones at init): the training set's moments, set by the trainer and
  exported with the weights. They are read through stop_gradient, so their
  gradient is zero and the optimiser leaves them alone.

  Attributes:
    dim: model width d (64 in the paper).
    slice_len: output samples, one of SLICE_LENGTHS.
    num_channels: must be 1 (the spectrogram is single-channel).
    kernel_size: transposed convolution kernel side (5).
    use_batchnorm: batch normalisation after the dense and hidden layers.
    griffin_lim_iterations: Griffin-Lim iterations for audio output (16).
  """
  dim: int = 64
  slice_len: int = 16384
  num_channels: int = 1
  kernel_size: int = 5
  use_batchnorm: bool = False
  griffin_lim_iterations: int = 16

  def setup(self):
    # Declared here, not in a compact __call__, so `normalized_spectrogram`
    # sees the same parameter tree.
    self.log_magnitude_mean = self.param(
        "log_magnitude_mean", nn.initializers.zeros, (SPEC_BINS,))
    self.log_magnitude_std = self.param(
        "log_magnitude_std", nn.initializers.ones, (SPEC_BINS,))
    self.z_project = nn.Dense(4 * 4 * 16 * self.dim,
                              kernel_init=_KERNEL_INIT)
    widths = [8 * self.dim, 4 * self.dim, 2 * self.dim, self.dim, 1]
    self.upconvs = [
        SubpixelConvTranspose(width, self.kernel_size, 2, name=f"upconv_{i}")
        for i, width in enumerate(widths)]
    if self.use_batchnorm:
      self.z_project_bn = batch_norm("z_project_bn")
      self.upconv_bns = [batch_norm(f"upconv_{i}_bn")
                         for i in range(len(widths) - 1)]

  def _moments(self):
    return (jax.lax.stop_gradient(self.log_magnitude_mean),
            jax.lax.stop_gradient(self.log_magnitude_std))

  def _check(self):
    hop_length(self.slice_len)
    if self.num_channels != 1:
      raise ValueError(f"SpecGANGenerator: num_channels must be 1, got "
                       f"{self.num_channels!r}")

  def __call__(self, z, train=False, spectrogram=False):
    """Generates spectrograms or waveforms.

    Args:
      z: [batch, latent_dim] latent vectors.
      train: batch statistics (True) or running averages (False) in batch
        normalisation; unused without it.
      spectrogram: return the normalised spectrogram (what the critic sees)
        instead of Griffin-Lim audio.

    Returns:
      [batch, 128, 128, 1] in [-1, 1] with `spectrogram`, else float32
      [batch, slice_len, 1].
    """
    self._check()
    if z.ndim != 2:
      raise ValueError(f"SpecGANGenerator: z must be [batch, latent_dim], got "
                       f"shape {z.shape}")
    mean, std = self._moments()
    x = self.z_project(z).reshape(z.shape[0], 4, 4, 16 * self.dim)
    if self.use_batchnorm:
      x = self.z_project_bn(x, use_running_average=not train)
    x = nn.relu(x)
    for i, upconv in enumerate(self.upconvs):
      x = upconv(x)
      if i < len(self.upconvs) - 1:
        if self.use_batchnorm:
          x = self.upconv_bns[i](x, use_running_average=not train)
        x = nn.relu(x)
    x = jnp.tanh(x)
    if spectrogram:
      return x
    audio = spectrogram_to_audio(x, mean, std, self.slice_len,
                                 self.griffin_lim_iterations)
    return audio[..., None]

  def normalized_spectrogram(self, audio):
    """Real audio [B, slice_len, 1] -> [B, 128, 128, 1] for the critic."""
    self._check()
    mean, std = self._moments()
    log_mag = log_magnitude(audio, self.slice_len)
    return normalize(log_mag, mean, std)[..., None]

  def round_trip(self, audio):
    """Real audio [B, slice_len, 1] through the representation and back.

    Normalised, clipped and inverted as the generator's own spectrograms
    are: what a perfect generator of spectrograms would sound like.
    """
    mean, std = self._moments()
    audio = spectrogram_to_audio(self.normalized_spectrogram(audio), mean,
                                 std, self.slice_len,
                                 self.griffin_lim_iterations)
    return audio[..., None]


class SpecGANDiscriminator(nn.Module):
  """Spectrogram [B, 128, 128, C] -> WGAN critic logits [B].

  Attributes:
    dim: model width d (64).
    kernel_size: convolution kernel side (5).
    use_batchnorm: batch normalisation after convolutions 1 and up.
  """
  dim: int = 64
  kernel_size: int = 5
  use_batchnorm: bool = False

  @nn.compact
  def __call__(self, x, rng=None, condition=None, train=True):
    """Scores spectrograms.

    Args:
      x: [batch, 128, 128, channels] normalised spectrograms.
      rng: accepted for the WaveGAN critic's signature; unused (SpecGAN has
        no phase shuffle).
      condition: must be None: this SpecGAN is unconditional.
      train: with batch normalisation, batch statistics (True) or running
        averages.

    Returns:
      logits [batch].
    """
    del rng  # No phase shuffle.
    if condition is not None:
      raise ValueError(f"SpecGANDiscriminator is unconditional; condition "
                       f"must be None, got shape "
                       f"{getattr(condition, 'shape', condition)}")
    if x.ndim != 4 or x.shape[1:3] != (SPEC_BINS, SPEC_BINS):
      raise ValueError(f"SpecGANDiscriminator: x must be [batch, {SPEC_BINS}, "
                       f"{SPEC_BINS}, channels], got shape {x.shape}")
    h = x
    for i in range(5):
      h = PhaseSplitConv(self.dim * 2**i, self.kernel_size, 2,
                         name=f"downconv_{i}")(h)
      if self.use_batchnorm and i > 0:
        h = batch_norm(f"downconv_{i}_bn", train)(h)
      h = nn.leaky_relu(h, 0.2)
    return nn.Dense(1, kernel_init=_KERNEL_INIT, name="output")(
        h.reshape(h.shape[0], -1))[:, 0]
