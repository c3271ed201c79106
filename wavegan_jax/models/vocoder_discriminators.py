"""GAN-vocoder critics: multi-period and multi-resolution spectrogram ones.

The discriminators HiFi-GAN (multi-period), UnivNet and Parallel WaveGAN
(multi-resolution spectrogram) judge waveforms with, sized for a CPU. Each
sub-discriminator scores patches, not whole clips: its output is a map of
logits [B, P] that a least-squares or hinge loss reads element by element
(`losses.discriminator_loss` on a list of maps), so the generator is told
where a clip sounds wrong, e.g. noise in a silent tail or a smeared band.

Strided layers are written as a space-to-depth fold followed by a stride-1
convolution (XLA:CPU runs the input gradient of strided convolutions on a
slow path); the fold by s then a kernel of k taps sees s * k input samples.

No layer mixes examples, so per-example gradients stay exact.
"""

from typing import List, Sequence, Tuple, Union

import flax.linen as nn
import jax.numpy as jnp

from wavegan_jax import spectral

Logits = List[jnp.ndarray]


def fold_time(x: jnp.ndarray, factor: int) -> jnp.ndarray:
  """[B, T, C] -> [B, ceil(T / factor), factor * C], zero-padding the end."""
  batch, length, channels = x.shape
  pad = (-length) % factor
  if pad:
    x = jnp.pad(x, ((0, 0), (0, pad), (0, 0)))
  return x.reshape(batch, (length + pad) // factor, factor * channels)


class PeriodDiscriminator(nn.Module):
  """HiFi-GAN's period discriminator: the waveform read as [N / p, p].

  Each of the p phases is a 1-D signal at rate 1 / p; the same stack of
  1-D convolutions runs over every phase, so periodic structure (the pitch
  harmonics) lines up along time.

  Attributes:
    period: p.
    channels: features of each folded convolution.
    fold: time fold (stride) of each convolution.
    kernel_len: taps of each convolution after the fold.
  """
  period: int
  channels: Sequence[int] = (16, 32, 64, 64)
  fold: int = 3
  kernel_len: int = 3

  @nn.compact
  def __call__(self, audio: jnp.ndarray
               ) -> Tuple[jnp.ndarray, List[jnp.ndarray]]:
    """Maps audio [B, N] to (logits [B, P], hidden activations)."""
    batch, length = audio.shape
    pad = (-length) % self.period
    if pad:
      audio = jnp.pad(audio, ((0, 0), (0, pad)), mode="reflect")
    # [B, N/p, p] -> [B * p, N/p, 1]: the phases as independent signals.
    phases = audio.reshape(batch, -1, self.period).transpose(0, 2, 1)
    hidden = phases.reshape(batch * self.period, -1, 1)
    features = []
    for layer, width in enumerate(self.channels):
      hidden = fold_time(hidden, self.fold)
      hidden = nn.Conv(width, (self.kernel_len,), padding="SAME",
                       name=f"conv_{layer}")(hidden)
      hidden = nn.leaky_relu(hidden, negative_slope=0.1)
      features.append(hidden)
    scores = nn.Conv(1, (3,), padding="SAME", name="conv_out")(hidden)
    return scores.reshape(batch, -1), features


class SpectrogramPatchDiscriminator(nn.Module):
  """2-D convolutions over one resolution's log-magnitude spectrogram.

  Every layer first folds bin pairs into channels (a stride-2 view of the
  frequency axis), so each layer reads half the bins of the one before.

  Attributes:
    n_fft: FFT size (and Hann window length).
    hop_length: STFT hop.
    channels: features of every hidden convolution.
    num_layers: hidden convolutions.
    eps: magnitude floor before the log.
  """
  n_fft: int
  hop_length: int
  channels: int = 8
  num_layers: int = 3
  eps: float = 1e-5

  @nn.compact
  def __call__(self, audio: jnp.ndarray
               ) -> Tuple[jnp.ndarray, List[jnp.ndarray]]:
    """Maps audio [B, N] to (logits [B, P], hidden activations)."""
    spec = spectral.stft(audio, self.n_fft, self.hop_length)
    hidden = jnp.log(spectral.magnitude(spec, self.eps))[..., None]
    batch, frames = hidden.shape[:2]
    features = []
    for layer in range(self.num_layers):
      bins = hidden.shape[2]
      if bins % 2:
        hidden = jnp.pad(hidden, ((0, 0), (0, 0), (0, 1), (0, 0)))
        bins += 1
      hidden = hidden.reshape(batch, frames, bins // 2, 2 * hidden.shape[-1])
      hidden = nn.Conv(self.channels, (3, 5 if not layer else 3),
                       padding="SAME", name=f"conv_{layer}")(hidden)
      hidden = nn.leaky_relu(hidden, negative_slope=0.2)
      features.append(hidden)
    scores = nn.Conv(1, (3, 3), padding="SAME", name="conv_out")(hidden)
    return scores.reshape(batch, -1), features


class VocoderDiscriminator(nn.Module):
  """A multi-period and a multi-resolution spectrogram discriminator.

  Attributes:
    periods: one `PeriodDiscriminator` per period (HiFi-GAN: 2, 3, 5, 7,
      11); empty for none.
    period_channels: their convolution widths.
    fft_sizes: one `SpectrogramPatchDiscriminator` per FFT size (hop a
      quarter of it); empty for none.
    spectrogram_channels: their convolution width.
  """
  periods: Sequence[int] = (2, 3, 5, 7, 11)
  period_channels: Sequence[int] = (8, 16, 32, 32)
  fft_sizes: Sequence[int] = (512, 256, 128)
  spectrogram_channels: int = 8

  @nn.compact
  def __call__(self, audio: jnp.ndarray, return_features: bool = False
               ) -> Union[Logits, Tuple[Logits, List[jnp.ndarray]]]:
    """Scores audio.

    Args:
      audio: [B, N] or [B, N, 1] waveform.
      return_features: also return the hidden activations.

    Returns:
      a list of logit maps [B, P_k], one per sub-discriminator (periods
      first); with return_features, (logits, features), features a flat
      list of every sub-discriminator's hidden activations.

    Raises:
      ValueError: for a bad audio shape or no sub-discriminator.
    """
    if audio.ndim == 3 and audio.shape[-1] == 1:
      audio = audio[..., 0]
    if audio.ndim != 2:
      raise ValueError(f"VocoderDiscriminator expects audio [B, N] or "
                       f"[B, N, 1], got shape {audio.shape}")
    if not self.periods and not self.fft_sizes:
      raise ValueError("VocoderDiscriminator needs at least one period or "
                       "FFT size")
    audio = audio.astype(jnp.float32)
    subs = [PeriodDiscriminator(period=p, channels=tuple(self.period_channels),
                                name=f"period_{p}") for p in self.periods]
    subs += [SpectrogramPatchDiscriminator(
        n_fft=n, hop_length=n // 4, channels=self.spectrogram_channels,
        name=f"spectrogram_{n}") for n in self.fft_sizes]
    logits, features = [], []
    for sub in subs:
      sub_logits, sub_features = sub(audio)
      logits.append(sub_logits)
      features.extend(sub_features)
    if return_features:
      return logits, features
    return logits
