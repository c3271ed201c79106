"""Multi-resolution STFT discriminator: 2-D convolutions over spectrograms.

An optional second discriminator beside WaveGAN's waveform one. For each STFT
resolution a small stack of 2-D convolutions (LeakyReLU 0.2) looks at the
log-magnitude spectrogram (or at its real and imaginary parts) as a
[frames, bins] image and produces a map of scores, averaged to one logit per
example. The per-example logit is the mean over resolutions, so its scale does
not depend on how many resolutions there are.

No layer mixes examples (no batch norm, no minibatch statistics), so the
per-example gradients that WGAN-GP's `losses.gradient_penalty` needs are
exact.
"""

from typing import List, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax.numpy as jnp

from wavegan_jax import spectral

INPUT_KINDS = ("log_magnitude", "complex")


def _bins_to_channels(image: jnp.ndarray) -> jnp.ndarray:
  """Halves the bin axis of [B, T, F, C] by moving bin pairs into channels.

  A stride-1 convolution after this reshaping sees what a stride-2 one would,
  and avoids XLA:CPU's slow path for the input gradient of strided
  convolutions (which WGAN-GP differentiates twice).
  """
  batch, frames, bins, channels = image.shape
  if bins % 2:
    image = jnp.pad(image, ((0, 0), (0, 0), (0, 1), (0, 0)))
    bins += 1
  return image.reshape(batch, frames, bins // 2, 2 * channels)


class SpectrogramDiscriminator(nn.Module):
  """Convolutions over one resolution's spectrogram.

  Attributes:
    n_fft: FFT size (and Hann window length).
    hop_length: STFT hop.
    channels: channels of every hidden convolution.
    num_layers: hidden convolutions; all but the first halve the frequency
      axis (stride 2 along bins).
    input_kind: 'log_magnitude' (1 channel) or 'complex' (real, imag).
    eps: power floor before the log.
  """
  n_fft: int
  hop_length: int
  channels: int = 32
  num_layers: int = 4
  input_kind: str = "log_magnitude"
  eps: float = 1e-7

  @nn.compact
  def __call__(self, audio: jnp.ndarray
               ) -> Tuple[jnp.ndarray, List[jnp.ndarray]]:
    """Maps audio [B, N] to (logits [B], hidden activations)."""
    spec = spectral.stft(audio, self.n_fft, self.hop_length)
    if self.input_kind == "log_magnitude":
      image = jnp.log(spectral.magnitude(spec, self.eps))[..., None]
    else:
      image = jnp.stack([jnp.real(spec), jnp.imag(spec)], axis=-1)
    features = []
    hidden = image
    for layer in range(self.num_layers):
      hidden = _bins_to_channels(hidden)
      hidden = nn.Conv(self.channels, (3, 5), padding="SAME",
                       name=f"conv_{layer}")(hidden)
      hidden = nn.leaky_relu(hidden, negative_slope=0.2)
      features.append(hidden)
    scores = nn.Conv(1, (3, 3), padding="SAME", name="conv_out")(hidden)
    return jnp.mean(scores, axis=(1, 2, 3)), features


class MultiResolutionSTFTDiscriminator(nn.Module):
  """One `SpectrogramDiscriminator` per STFT resolution.

  Attributes:
    fft_sizes: FFT size per resolution.
    hop_sizes: hop per resolution; defaults to fft_size // 4.
    channels: hidden channels of every convolution.
    num_layers: hidden convolutions per resolution.
    input_kind: 'log_magnitude' or 'complex'.
  """
  fft_sizes: Sequence[int] = (512, 256, 128)
  hop_sizes: Optional[Sequence[int]] = None
  channels: int = 32
  num_layers: int = 4
  input_kind: str = "log_magnitude"

  @nn.compact
  def __call__(self, audio: jnp.ndarray, return_features: bool = False
               ) -> Union[jnp.ndarray, Tuple[jnp.ndarray, List[jnp.ndarray]]]:
    """Scores audio.

    Args:
      audio: [B, N] or [B, N, 1] waveform.
      return_features: also return the hidden activations.

    Returns:
      logits [B] (mean over resolutions); with return_features,
      (logits, features) where features is a flat list of
      len(fft_sizes) * num_layers activations [B, frames, bins, channels],
      resolution by resolution, layer by layer (for
      `losses.feature_matching_loss`).

    Raises:
      ValueError: for a bad audio shape, input_kind or hop_sizes.
    """
    if audio.ndim == 3 and audio.shape[-1] == 1:
      audio = audio[..., 0]
    if audio.ndim != 2:
      raise ValueError(
          f"MultiResolutionSTFTDiscriminator expects audio [B, N] or "
          f"[B, N, 1], got shape {audio.shape}")
    if self.input_kind not in INPUT_KINDS:
      raise ValueError(
          f"Unknown input_kind {self.input_kind!r}; expected one of "
          f"{', '.join(INPUT_KINDS)}")
    hop_sizes = self.hop_sizes or tuple(n // 4 for n in self.fft_sizes)
    if len(hop_sizes) != len(self.fft_sizes):
      raise ValueError(
          f"hop_sizes {tuple(hop_sizes)} and fft_sizes "
          f"{tuple(self.fft_sizes)} differ in length")
    logits, features = [], []
    for n_fft, hop in zip(self.fft_sizes, hop_sizes):
      resolution_logits, resolution_features = SpectrogramDiscriminator(
          n_fft=n_fft, hop_length=hop, channels=self.channels,
          num_layers=self.num_layers, input_kind=self.input_kind,
          name=f"resolution_{n_fft}")(audio.astype(jnp.float32))
      logits.append(resolution_logits)
      features.extend(resolution_features)
    mean_logits = sum(logits) / len(logits)
    if return_features:
      return mean_logits, features
    return mean_logits
