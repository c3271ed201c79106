"""A posterior over the AV generator's noise, read from the target clip.

The video and the reference say which digit is spoken, by whom and when,
but not how: the take's pitch contour, pace and loudness are in neither.
Trained by regression with noise the generator cannot use, the generator
draws the mean of those (flat harmonics, docs/experiment_log.md run 42).
With this encoder (a conditional VAE's recognition model) the generator's
noise in training is drawn from q(z | target) instead of N(0, 1), and the
objective adds KL(q || N(0, 1)): the noise now carries what the conditions
do not, and generation samples it from the prior as before, so inference
and exports are unchanged.

The encoder reads the target's log-magnitude STFT (n_fft 512 at 8 kHz:
15.6 Hz bins, so harmonics are resolved), mixes frames with two stride-1
convolutions and averages over time: one vector per clip.
"""

from typing import Tuple

import flax.linen as nn
import jax.numpy as jnp

from wavegan_jax import spectral


class PosteriorEncoder(nn.Module):
  """(mean, log_variance) [B, latent_dim] of q(z | audio [B, N]).

  Attributes:
    latent_dim: width of z (the generator's `noise_features`).
    channels: width of the per-frame features.
    n_fft: STFT size (and Hann window length).
    hop_length: STFT hop.
    kernel_len: taps of each temporal convolution.
  """
  latent_dim: int
  channels: int = 64
  n_fft: int = 512
  hop_length: int = 128
  kernel_len: int = 5

  @nn.compact
  def __call__(self, audio: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
    if audio.ndim != 2 or audio.shape[-1] < self.n_fft:
      raise ValueError(
          f"PosteriorEncoder needs audio [batch, samples >= n_fft="
          f"{self.n_fft}], got shape {audio.shape}")
    frames = jnp.log(spectral.magnitude(
        spectral.stft(audio, self.n_fft, self.hop_length)))
    hidden = nn.LayerNorm(name="input_norm")(frames)
    hidden = nn.gelu(nn.Dense(self.channels, name="frame_proj")(hidden))
    for index in range(2):
      hidden = nn.gelu(nn.Conv(self.channels, (self.kernel_len,),
                               padding="SAME", name=f"conv_{index}")(hidden))
    pooled = jnp.mean(hidden, axis=1)
    # Zero-initialised: q starts as N(0, 1), so the first steps see the
    # prior's noise, as training without the encoder does.
    stats = nn.Dense(2 * self.latent_dim, kernel_init=nn.initializers.zeros,
                     name="stats")(pooled)
    mean, log_variance = jnp.split(stats, 2, axis=-1)
    return mean, log_variance
