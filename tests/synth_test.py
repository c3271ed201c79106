"""Tests for wavegan_jax.models.synth (harmonic-plus-noise synthesis)."""

import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import synth

RATE = 8000


def test_constant_f0_first_harmonic_is_a_sine():
  n = 4000
  f0 = jnp.full((1, n), 200.0)
  amplitudes = jnp.zeros((1, n, 5)).at[..., 0].set(0.5)
  out = np.asarray(synth.harmonic_synth(f0, amplitudes, RATE))[0]
  t = np.arange(1, n + 1)  # The phase sums f0 up to and including sample t.
  np.testing.assert_allclose(out, 0.5 * np.sin(2 * np.pi * 200 * t / RATE),
                             atol=2e-4)


def test_harmonics_sit_at_multiples_of_f0_and_alias_free():
  n = 8000
  f0 = jnp.full((1, n), 1500.0)
  # Harmonics 1, 2 (3000 Hz) audible; 3 (4500 Hz) above Nyquist: silent.
  amplitudes = jnp.ones((1, n, 3))
  out = np.asarray(synth.harmonic_synth(f0, amplitudes, RATE))[0]
  spectrum = np.abs(np.fft.rfft(out)) / n  # 1 Hz bins.
  peaks = sorted(np.argsort(spectrum)[-2:])
  assert peaks == [1500, 3000]
  assert spectrum[[1500, 3000]].min() > 0.45
  assert spectrum[3500] < 1e-3  # 4500 Hz would alias to 3500 Hz.


def test_gliding_f0_keeps_the_phase_continuous():
  n = 2000
  f0 = jnp.linspace(100.0, 400.0, n)[None]
  out = np.asarray(synth.harmonic_synth(f0, jnp.ones((1, n, 1)), RATE))[0]
  # The largest sample-to-sample step of sin at <= 400 Hz is 2 pi 400 / RATE.
  assert np.abs(np.diff(out)).max() <= 2 * np.pi * 400 / RATE + 1e-4


def test_upsample_controls_interpolates_between_frame_centres():
  controls = jnp.asarray([[0.0, 4.0]])  # Frames centred at samples 1.5, 5.5.
  out = np.asarray(synth.upsample_controls(controls, 8))[0]
  np.testing.assert_allclose(out, [0, 0, 0.5, 1.5, 2.5, 3.5, 4, 4])
  vectors = synth.upsample_controls(jnp.ones((2, 3, 5)), 12)
  assert vectors.shape == (2, 12, 5)
  # Against numpy's interpolation at the sample positions, hop 16.
  frames = np.random.default_rng(1).normal(size=(1, 6)).astype(np.float32)
  centres = (np.arange(6) + 0.5) * 16 - 0.5
  expected = np.interp(np.arange(96), centres, frames[0])
  np.testing.assert_allclose(synth.upsample_controls(frames, 96)[0], expected,
                             atol=1e-6)
  with pytest.raises(ValueError, match="not a multiple of the 6 control"):
    synth.upsample_controls(frames, 100)


def test_cumulative_cycles_is_the_running_sum_modulo_one():
  x = np.random.default_rng(0).uniform(0, 0.06, (3, 8192)).astype(np.float32)
  expected = np.cumsum(x.astype(np.float64), 1) % 1.0
  got = np.asarray(synth.cumulative_cycles(jnp.asarray(x)), np.float64)
  # Compare on the circle: 0.9999 and 0.0001 are close.
  distance = np.abs((got - expected + 0.5) % 1.0 - 0.5)
  assert distance.max() < 2e-5
  odd = np.full((1, 10), 0.3, np.float32)  # Not a multiple of 64.
  np.testing.assert_allclose(synth.cumulative_cycles(jnp.asarray(odd))[0],
                             (0.3 * np.arange(1, 11)) % 1.0, atol=1e-6)


def test_noise_bank_bands_sum_to_white_noise_and_split_the_spectrum():
  bank = synth.band_noise_bank(4096, 8, seed=3)
  noise = np.random.default_rng(3).standard_normal(4096)
  np.testing.assert_allclose(bank.sum(-1), noise, atol=1e-4)
  spectrum = np.abs(np.fft.rfft(bank[:, 2]))
  bins = len(spectrum)
  inside = spectrum[2 * bins // 8 + 1:3 * bins // 8 - 1]
  outside = np.concatenate([spectrum[:2 * bins // 8 - 1],
                            spectrum[3 * bins // 8 + 1:]])
  assert inside.mean() > 0.5 and outside.max() < 1e-3


def test_exp_sigmoid_is_positive_and_bounded():
  x = jnp.linspace(-30, 30, 61)
  y = np.asarray(synth.exp_sigmoid(x))
  assert (y > 0).all() and (y <= 2.0 + 1e-6).all() and (np.diff(y) >= 0).all()


def test_bad_shapes_are_named():
  with pytest.raises(ValueError, match=r"f0 must be \[B, N\]"):
    synth.harmonic_synth(jnp.ones((1, 10)), jnp.ones((1, 9, 2)), RATE)
