"""Differentiable harmonic-plus-noise synthesis (the 'harmonic' decoder).

A source model for voiced sound: a bank of sinusoids at integer multiples of
a time-varying fundamental f0, plus noise shaped by a fixed bank of
frequency bands. Both are driven by control sequences at a low frame rate
(f0, loudness, harmonic distribution, noise band gains) that are linearly
interpolated to the audio rate, so a network only has to predict smooth
controls and the waveform has harmonics from the first step (the idea of
DDSP, Engel et al., ICLR 2020; written here for this project).

Functions:
  upsample_controls: [B, C, ...] control frames -> [B, N, ...] per sample.
  cumulative_cycles: the running phase, fast on XLA:CPU.
  harmonic_synth: f0 [B, N] and amplitudes [B, N, K] -> waveform [B, N].
  band_noise_bank: a fixed white-noise realisation split into bands.
  exp_sigmoid: DDSP's bounded, positive, log-scaled activation.
"""

import jax
import jax.numpy as jnp
import numpy as np


def exp_sigmoid(x, exponent=10.0, max_value=2.0, threshold=1e-7):
  """max_value * sigmoid(x) ** log(exponent) + threshold (positive, bounded).

  Gains in [threshold, max_value] whose logarithm moves roughly linearly
  with x, as loudness does.
  """
  return max_value * jax.nn.sigmoid(x) ** np.log(exponent) + threshold


def upsample_controls(controls: jax.Array, num_samples: int) -> jax.Array:
  """Linear interpolation of control frames to the audio rate.

  Args:
    controls: [B, C, ...] with C control frames spanning the clip evenly
      (frame c sits at the centre of samples [c * h, (c + 1) * h), h =
      num_samples / C, an integer).
    num_samples: N.

  Returns:
    [B, N, ...]; before the first and after the last frame centre the end
    values are held.
  """
  frames = controls.shape[1]
  if num_samples % frames:
    raise ValueError(f"num_samples={num_samples} is not a multiple of the "
                     f"{frames} control frames")
  hop = num_samples // frames
  # Sample j of frame c lies between frames c - 1 and c (first half) or c
  # and c + 1 (second half): weights on (previous, own, next) per j. Written
  # with shifts and broadcasts, as a gather's gradient (a scatter) is slow
  # on XLA:CPU.
  offset = (np.arange(hop) + 0.5) / hop - 0.5  # In (-0.5, 0.5).
  weights = np.stack([np.maximum(-offset, 0), 1 - np.abs(offset),
                      np.maximum(offset, 0)]).astype(np.float32)  # [3, h]
  padded = jnp.concatenate([controls[:, :1], controls, controls[:, -1:]], 1)
  extra = (1,) * (controls.ndim - 2)
  out = sum(padded[:, i:i + frames, None] * weights[i].reshape(
      (1, 1, hop) + extra) for i in range(3))
  return out.reshape((controls.shape[0], num_samples) + controls.shape[2:])


def _add_modulo_one(a, b):
  total = a + b
  return total - jnp.floor(total)


def cumulative_cycles(cycles_per_sample: jax.Array) -> jax.Array:
  """Running sum over axis 1 of [B, N], modulo 1 (the phase in cycles).

  A parallel prefix sum whose partial sums are wrapped to [0, 1) at every
  level, so float32 keeps ~1e-6 cycles of precision over any length (whole
  cycles do not matter); XLA:CPU lowers jnp.cumsum over long axes to a
  quadratic-time windowed reduction.
  """
  return jax.lax.associative_scan(_add_modulo_one, cycles_per_sample, axis=1)


def harmonic_synth(f0: jax.Array, amplitudes: jax.Array,
                   sample_rate: float) -> jax.Array:
  """Sum of sinusoids at k * f0 (k = 1..K), each with its own amplitude.

  The phase is the running sum of the instantaneous frequency, so f0 may
  glide; harmonics at or above the Nyquist frequency are silenced sample by
  sample (no aliasing).

  Args:
    f0: [B, N] fundamental frequency in Hz per sample.
    amplitudes: [B, N, K] amplitude of harmonic k + 1 per sample.
    sample_rate: Hz.

  Returns:
    [B, N] waveform: sum_k a_k(t) sin(k * phi(t)), phi(t) = 2 pi sum_{s<=t}
    f0(s) / sample_rate.
  """
  if f0.ndim != 2 or amplitudes.shape[:2] != f0.shape:
    raise ValueError(f"f0 must be [B, N] and amplitudes [B, N, K]; got "
                     f"{f0.shape} and {amplitudes.shape}")
  num_harmonics = amplitudes.shape[-1]
  phase = 2 * np.pi * cumulative_cycles(f0 / sample_rate)
  # (cos k phi, sin k phi) for k = 1..K as powers of e^{i phi}, doubling
  # the known powers each round: log2(K) rounds of complex multiplies
  # instead of K transcendentals per sample (XLA:CPU's sin dominated the
  # step) and no K-deep chain for the gradient to walk.
  real, imag = jnp.cos(phase)[..., None], jnp.sin(phase)[..., None]
  while real.shape[-1] < num_harmonics:
    top_real, top_imag = real[..., -1:], imag[..., -1:]
    real, imag = (jnp.concatenate([real, real * top_real - imag * top_imag],
                                  -1),
                  jnp.concatenate([imag, real * top_imag + imag * top_real],
                                  -1))
  sines = imag[..., :num_harmonics]
  ratios = jnp.arange(1, num_harmonics + 1, dtype=f0.dtype)
  audible = f0[..., None] * ratios < sample_rate / 2
  return jnp.sum(jnp.where(audible, amplitudes, 0.0) * sines, axis=-1)


def band_noise_bank(num_samples: int, num_bands: int, seed: int = 0
                    ) -> np.ndarray:
  """A fixed white noise split into num_bands equal-width frequency bands.

  Args:
    num_samples: N.
    num_bands: bands between 0 and the Nyquist frequency.
    seed: the noise realisation.

  Returns:
    float32 [N, num_bands] whose columns sum to the white noise (unit
    variance); column b holds its FFT bins in [b, b + 1) * N / (2 bands).
  """
  noise = np.random.default_rng(seed).standard_normal(num_samples)
  spectrum = np.fft.rfft(noise)
  bins = np.arange(len(spectrum))
  band_of_bin = np.minimum(bins * num_bands // len(spectrum), num_bands - 1)
  bank = np.stack([np.fft.irfft(np.where(band_of_bin == b, spectrum, 0),
                                n=num_samples) for b in range(num_bands)], -1)
  return bank.astype(np.float32)
