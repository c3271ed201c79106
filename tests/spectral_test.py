"""Tests for wavegan_jax.spectral against librosa's reference formulation."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from wavegan_jax import spectral


def _noise(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _relative_error(actual, expected):
  return np.max(np.abs(np.asarray(actual) - expected)) / np.max(
      np.abs(expected))


@pytest.mark.parametrize(
    "n_fft, hop, win_length, center",
    [(512, 128, None, True), (512, 128, None, False), (256, 100, 200, True),
     (128, 32, 96, False), (64, 48, None, True)])
def test_stft_equals_librosa(n_fft, hop, win_length, center):
  audio = _noise((2, 1000))
  expected = librosa.stft(audio, n_fft=n_fft, hop_length=hop,
                          win_length=win_length, center=center,
                          pad_mode="reflect").transpose(0, 2, 1)
  actual = spectral.stft(audio, n_fft, hop, win_length, center=center)
  assert actual.shape == expected.shape
  assert actual.dtype == jnp.complex64
  assert _relative_error(actual, expected) < 1e-4


def test_stft_constant_padding_and_unbatched_input():
  audio = _noise(700, seed=1)
  expected = librosa.stft(audio, n_fft=128, hop_length=32,
                          pad_mode="constant").T
  actual = spectral.stft(audio, 128, 32, pad_mode="constant")
  assert actual.shape == expected.shape == (1 + 700 // 32, 65)
  assert _relative_error(actual, expected) < 1e-4


def test_stft_frame_count_for_hop_multiple():
  spec = spectral.stft(jnp.zeros((3, 8192)), 512, 128)
  assert spec.shape == (3, 8192 // 128 + 1, 257)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(n_fft=64, hop_length=16, win_length=128), "win_length <= n_fft"),
     (dict(n_fft=64, hop_length=0), "hop_length > 0"),
     (dict(n_fft=64, hop_length=16, pad_mode="edge"), "'edge'")])
def test_stft_rejects_bad_sizes(kwargs, message):
  with pytest.raises(ValueError, match=message):
    spectral.stft(jnp.zeros((1, 256)), **kwargs)


def test_stft_rejects_short_audio_and_bad_rank():
  with pytest.raises(ValueError, match="more than n_fft // 2 = 256 samples, "
                     "got 100"):
    spectral.stft(jnp.zeros((1, 100)), 512, 128)
  with pytest.raises(ValueError, match="at least n_fft = 512 samples"):
    spectral.stft(jnp.zeros((1, 100)), 512, 128, center=False)
  with pytest.raises(ValueError, match=r"got shape \(1, 2, 3, 4\)"):
    spectral.stft(jnp.zeros((1, 2, 3, 4)), 4, 2)


def test_magnitude_floor_and_gradient():
  spec = jnp.array([3 + 4j, 0j], dtype=jnp.complex64)
  np.testing.assert_allclose(spectral.magnitude(spec, eps=1e-6),
                             [5.0, 1e-3], rtol=1e-6)
  grad = jax.grad(lambda s: spectral.magnitude(s, 1e-6).sum())(spec)
  assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("sample_rate, n_fft, num_mels, fmin, fmax",
                         [(8000, 512, 40, 0.0, None),
                          (8000, 1024, 80, 20.0, 3800.0),
                          (22050, 1024, 80, 0.0, 8000.0)])
def test_mel_filterbank_equals_librosa(sample_rate, n_fft, num_mels, fmin,
                                       fmax):
  expected = librosa.filters.mel(sr=sample_rate, n_fft=n_fft,
                                 n_mels=num_mels, fmin=fmin, fmax=fmax).T
  actual = spectral.mel_filterbank(sample_rate, n_fft, num_mels, fmin, fmax)
  assert actual.shape == (n_fft // 2 + 1, num_mels)
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-8)


def test_mel_filterbank_rejects_bad_band():
  with pytest.raises(ValueError, match="fmin=0, fmax=5000"):
    spectral.mel_filterbank(8000, 512, 40, fmin=0, fmax=5000)


def test_log_mel_spectrogram_equals_reference():
  audio = _noise((2, 2048), seed=2)
  magnitudes = np.abs(librosa.stft(audio, n_fft=512, hop_length=128,
                                   pad_mode="reflect"))
  mel = librosa.filters.mel(sr=8000, n_fft=512, n_mels=40)
  expected = np.log(np.maximum(np.einsum("mf,bft->btm", mel, magnitudes),
                               1e-5))
  actual = spectral.log_mel_spectrogram(audio, 8000, 512, 128, 40)
  assert actual.shape == (2, 2048 // 128 + 1, 40)
  np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_log_mel_drop_last_aligns_with_video_frames():
  audio = jnp.zeros((2, 8192))
  full = spectral.log_mel_spectrogram(audio, 8000, 1024, 256, 80)
  aligned = spectral.log_mel_spectrogram(audio, 8000, 1024, 256, 80,
                                         drop_last=True)
  assert full.shape == (2, 33, 80)
  assert aligned.shape == (2, 32, 80)
  np.testing.assert_allclose(aligned, np.log(1e-5), rtol=1e-6)


def test_log_mel_is_jittable_and_differentiable_at_silence():
  fn = jax.jit(lambda a: spectral.log_mel_spectrogram(a, 8000, 256, 64, 32)
               .sum())
  grad = jax.grad(fn)(jnp.zeros((2, 1024)).at[0, 100].set(0.5))
  assert grad.shape == (2, 1024)
  assert np.all(np.isfinite(np.asarray(grad)))
  assert np.abs(np.asarray(grad[0])).max() > 0


@pytest.mark.parametrize("sample_rate,n_fft,level", [(8000, 256, -50.0),
                                                     (16000, 512, -30.0)])
def test_noise_mel_floor_is_white_noise_on_average(sample_rate, n_fft, level):
  noise = _noise((16, 8192)) * 10.0 ** (level / 20)
  mels = np.exp(np.asarray(spectral.log_mel_spectrogram(
      noise, sample_rate, n_fft, n_fft // 4, 40, eps=1e-12)))
  simulated = mels[:, 4:-4].mean((0, 1))  # away from the reflected edges
  np.testing.assert_allclose(
      spectral.noise_mel_floor(sample_rate, n_fft, 40, level), simulated,
      rtol=0.05)


def test_floored_log_mel_barely_tells_two_noises_apart():
  # Two independent noises at -40 dBFS: their waveforms differ more than
  # either differs from silence, their floored log-mels far less, and
  # noise 30 dB under the floor adds about log(1 + 10^(-30/20)) = 0.031.
  quiet = 10.0 ** (-40 / 20)
  first, second = _noise((4, 8192), 1) * quiet, _noise((4, 8192), 2) * quiet
  silence = np.zeros_like(first)
  features = lambda a: np.asarray(spectral.floored_log_mel(a, 8000))
  distance = lambda a, b, f: np.mean(np.abs(f(a) - f(b)))
  waveform = lambda a: a
  assert distance(first, second, waveform) > distance(first, silence,
                                                      waveform)
  assert distance(first, second, features) < 0.25 * distance(
      first, silence, features)
  under = distance(first * 10 ** (-40 / 20), silence, features)
  assert 0.02 < under < 0.04
  assert features(first).shape == (4, 129, 40)
