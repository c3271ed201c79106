"""Tests for wavegan_jax/models/specgan.py."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from wavegan_jax.models import specgan


def _audio(batch, slice_len, seed=0):
  return np.random.RandomState(seed).uniform(
      -1, 1, (batch, slice_len)).astype(np.float32)


def _reference_stft(audio, hop):
  """Explicit framing: frames from sample 0, end zero-padded, periodic Hann."""
  num_frames = audio.shape[1] // hop
  padded = np.pad(audio.astype(np.float64),
                  ((0, 0), (0, (num_frames - 1) * hop + 256 - audio.shape[1])))
  window = scipy.signal.get_window("hann", 256, fftbins=True)
  frames = np.stack([padded[:, t * hop:t * hop + 256] for t in
                     range(num_frames)], axis=1)
  return np.fft.rfft(frames * window, axis=-1)


def _chirp_and_tone(slice_len, sample_rate=8000):
  t = np.arange(slice_len) / sample_rate
  chirp = 0.5 * np.sin(2 * np.pi * (200 * t + 1500 * t**2))
  tone = 0.3 * np.sin(2 * np.pi * 440 * t)
  return (chirp + tone).astype(np.float32)[None]


@pytest.mark.parametrize("slice_len", specgan.SLICE_LENGTHS)
def test_log_magnitude_matches_numpy(slice_len):
  audio = _audio(1, slice_len)
  hop = specgan.hop_length(slice_len)
  assert hop == slice_len // 128
  expected = np.log(np.abs(_reference_stft(audio, hop)) + 1e-6)[..., :128]
  got = np.asarray(jax.jit(specgan.log_magnitude, static_argnums=1)(
      jnp.asarray(audio[..., None]), slice_len))
  assert got.shape == (1, 128, 128) and got.dtype == np.float32
  # Bins with tiny |X| make log() sensitive to float32 FFT rounding.
  np.testing.assert_allclose(got, expected, atol=2e-3)
  np.testing.assert_allclose(np.exp(got), np.exp(expected), rtol=1e-4,
                             atol=1e-4)


def test_stft_matches_numpy_and_istft_inverts_it():
  hop = 64
  audio = _audio(2, 8192, seed=1)
  spec = specgan.stft(jnp.asarray(audio), hop)
  assert spec.shape == (2, 128, 129)
  np.testing.assert_allclose(np.asarray(spec), _reference_stft(audio, hop),
                             atol=2e-4)
  restored = np.asarray(specgan.istft(spec, hop, 8192))
  assert restored.shape == (2, 8192)
  # Sample 0 is 0: the periodic Hann window is zero there, so no frame holds
  # it. Samples 1-15 divide by a tiny summed squared window (2e-8 at sample
  # 1), which amplifies float32 rounding (measured max error 3e-4).
  np.testing.assert_array_equal(restored[:, 0], 0.0)
  np.testing.assert_allclose(restored[:, 1:16], audio[:, 1:16], atol=1e-3)
  np.testing.assert_allclose(restored[:, 16:], audio[:, 16:], atol=1e-5)
  # A hop that does not divide N_FFT takes the scatter overlap-add.
  short = audio[:1, :1000]
  restored = np.asarray(specgan.istft(specgan.stft(short, 96), 96, 1000))
  np.testing.assert_allclose(restored[:, 16:], short[:, 16:], atol=1e-5)


def _spectral_convergence(audio, target, hop):
  estimate = np.abs(np.asarray(specgan.stft(audio, hop)))
  return np.linalg.norm(estimate - target) / np.linalg.norm(target)


def test_griffin_lim_converges():
  hop = 64
  target = np.abs(np.asarray(specgan.stft(jnp.asarray(_chirp_and_tone(8192)),
                                          hop)))
  one = specgan.griffin_lim(target, hop, 8192, iterations=1)
  sixteen = specgan.griffin_lim(target, hop, 8192, iterations=16)
  assert sixteen.shape == (1, 8192) and sixteen.dtype == jnp.float32
  converge_one = _spectral_convergence(one, target, hop)
  converge_sixteen = _spectral_convergence(sixteen, target, hop)
  # Measured: 0.90 from zero phase, 0.44 after 1 iteration, 0.187 after 16
  # (0.07 after 100); 0.22 leaves float-rounding headroom, and a broken
  # phase update or window normaliser stays near 0.4 or above.
  assert converge_sixteen < converge_one
  assert converge_sixteen < 0.22


def test_normalize_round_trip_and_clip():
  rng = np.random.RandomState(2)
  mean = rng.normal(size=128).astype(np.float32)
  std = rng.uniform(0.5, 2.0, size=128).astype(np.float32)
  inside = rng.uniform(-0.99, 0.99, (2, 128, 128)).astype(np.float32)
  log_mag = specgan.denormalize(inside, mean, std)
  np.testing.assert_allclose(specgan.normalize(log_mag, mean, std), inside,
                             atol=1e-5)
  far = mean + np.array([-1, 1])[:, None, None] * 4 * std  # 4 std > 3.
  np.testing.assert_array_equal(specgan.normalize(far, mean, std),
                                np.array([-1.0, 1.0])[:, None, None] *
                                np.ones((2, 1, 128)))


def test_moments_match_numpy():
  rng = np.random.RandomState(3)
  batches = [rng.normal(3.0, 2.0, (b, 5, 128)).astype(np.float32)
             for b in (2, 3)]
  mean, std = specgan.moments(iter(batches))
  joined = np.concatenate(batches).astype(np.float64)
  assert mean.shape == std.shape == (128,) and mean.dtype == np.float32
  np.testing.assert_allclose(mean, joined.mean(axis=(0, 1)), rtol=1e-6)
  np.testing.assert_allclose(std, joined.std(axis=(0, 1)), rtol=1e-5)
  _, constant_std = specgan.moments([np.ones((1, 2, 128))])
  assert np.all(constant_std > 0)
  with pytest.raises(ValueError, match="empty"):
    specgan.moments([])


def _with_moments(params):
  """The params with non-trivial moments in place of zeros and ones."""
  rng = np.random.RandomState(4)
  params = dict(flax.core.unfreeze(params))
  params["log_magnitude_mean"] = jnp.asarray(rng.normal(size=128), jnp.float32)
  params["log_magnitude_std"] = jnp.asarray(rng.uniform(0.5, 2.0, size=128),
                                            jnp.float32)
  return params


def test_generator_outputs_and_moments():
  generator = specgan.SpecGANGenerator(dim=2, slice_len=8192,
                                       griffin_lim_iterations=2)
  init = generator.init(jax.random.PRNGKey(0), jnp.zeros((1, 100)))["params"]
  assert init["log_magnitude_mean"].shape == (128,)
  assert init["log_magnitude_std"].shape == (128,)
  np.testing.assert_array_equal(init["log_magnitude_mean"], 0.0)
  np.testing.assert_array_equal(init["log_magnitude_std"], 1.0)
  params = _with_moments(init)
  z = jax.random.normal(jax.random.PRNGKey(1), (2, 100))
  spec = generator.apply({"params": params}, z, spectrogram=True)
  assert spec.shape == (2, 128, 128, 1)
  assert float(jnp.max(jnp.abs(spec))) <= 1.0
  audio = generator.apply({"params": params}, z)
  assert audio.shape == (2, 8192, 1)
  expected = specgan.spectrogram_to_audio(
      spec, params["log_magnitude_mean"], params["log_magnitude_std"], 8192,
      iterations=2)
  np.testing.assert_allclose(audio[..., 0], expected, rtol=1e-5, atol=1e-5)

  # Both outputs that read the moments: Griffin-Lim audio and the real
  # audio's normalised spectrogram.
  real = jnp.asarray(_audio(2, 8192)[..., None])
  outputs = {
      "audio": lambda p: generator.apply({"params": p}, z),
      "real": lambda p: generator.apply(
          {"params": p}, real,
          method=specgan.SpecGANGenerator.normalized_spectrogram)}
  for name, output in outputs.items():
    grads = jax.grad(lambda p, out=output: jnp.sum(out(p)))(params)
    np.testing.assert_array_equal(grads["log_magnitude_mean"], 0.0)
    np.testing.assert_array_equal(grads["log_magnitude_std"], 0.0)
    if name == "audio":  # The layers do get a (finite) gradient.
      kernel_grad = np.asarray(grads["z_project"]["kernel"])
      assert np.all(np.isfinite(kernel_grad))
      assert np.max(np.abs(kernel_grad)) > 0


def test_generator_normalized_spectrogram():
  generator = specgan.SpecGANGenerator(dim=2, slice_len=8192)
  params = _with_moments(generator.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 100)), spectrogram=True)["params"])
  audio = _audio(2, 8192, seed=5)[..., None]
  got = generator.apply({"params": params}, jnp.asarray(audio),
                        method=specgan.SpecGANGenerator.normalized_spectrogram)
  expected = specgan.normalize(specgan.log_magnitude(audio, 8192),
                               params["log_magnitude_mean"],
                               params["log_magnitude_std"])[..., None]
  assert got.shape == (2, 128, 128, 1)
  np.testing.assert_allclose(got, expected, atol=1e-6)
  assert float(jnp.std(got)) > 0.1  # Non-trivial moments, not all clipped.


def test_generator_round_trip_inverts_the_real_spectrogram():
  # 64 iterations so the inversion is close enough to see.
  generator = specgan.SpecGANGenerator(dim=2, slice_len=8192,
                                       griffin_lim_iterations=64)
  params = dict(flax.core.unfreeze(generator.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 100)))["params"]))
  # Moments that clip little: log-magnitudes in [-13, 5] map into [-1, 1].
  params["log_magnitude_mean"] = jnp.full((128,), -4.0)
  params["log_magnitude_std"] = jnp.full((128,), 3.0)
  audio = _chirp_and_tone(8192)[..., None]
  got = generator.apply({"params": params}, jnp.asarray(audio),
                        method=specgan.SpecGANGenerator.round_trip)
  normalized = specgan.normalize(specgan.log_magnitude(audio, 8192),
                                 params["log_magnitude_mean"],
                                 params["log_magnitude_std"])
  expected = specgan.spectrogram_to_audio(
      normalized, params["log_magnitude_mean"], params["log_magnitude_std"],
      8192, iterations=64)
  assert got.shape == (1, 8192, 1)
  np.testing.assert_allclose(got[..., 0], expected, rtol=1e-5, atol=1e-5)
  # Its spectrogram is near the original's (phase aside), unlike silence's.
  again = specgan.normalize(specgan.log_magnitude(got, 8192),
                            params["log_magnitude_mean"],
                            params["log_magnitude_std"])
  error = float(jnp.mean(jnp.abs(again - normalized)))
  silence = float(jnp.mean(jnp.abs(specgan.normalize(
      specgan.log_magnitude(jnp.zeros_like(got), 8192),
      params["log_magnitude_mean"], params["log_magnitude_std"])
                                   - normalized)))
  assert error < 0.2 * silence, (error, silence)


def test_discriminator():
  critic = specgan.SpecGANDiscriminator(dim=2)
  x = jnp.zeros((3, 128, 128, 1))
  params = critic.init(jax.random.PRNGKey(0), x)["params"]
  logits = critic.apply({"params": params}, x, rng=jax.random.PRNGKey(1))
  assert logits.shape == (3,)
  assert params["output"]["kernel"].shape == (4 * 4 * 16 * 2, 1)
  np.testing.assert_array_equal(params["output"]["bias"], 0.0)
  with pytest.raises(ValueError, match=r"\(3, 64, 128, 1\)"):
    critic.apply({"params": params}, jnp.zeros((3, 64, 128, 1)))
  with pytest.raises(ValueError, match=r"condition must be None.*\(3, 4\)"):
    critic.apply({"params": params}, x, condition=jnp.zeros((3, 4)))


def test_batchnorm_variants():
  generator = specgan.SpecGANGenerator(dim=2, slice_len=8192,
                                       use_batchnorm=True)
  z = jnp.zeros((2, 100))
  variables = generator.init(jax.random.PRNGKey(0), z, spectrogram=True)
  assert "z_project_bn" in variables["batch_stats"]
  spec, _ = generator.apply(variables, z, train=True, spectrogram=True,
                            mutable=["batch_stats"])
  assert spec.shape == (2, 128, 128, 1)
  critic = specgan.SpecGANDiscriminator(dim=2, use_batchnorm=True)
  variables = critic.init(jax.random.PRNGKey(0), spec)
  assert "downconv_0_bn" not in variables["batch_stats"]
  assert "downconv_1_bn" in variables["batch_stats"]


def test_errors_name_the_bad_value():
  with pytest.raises(ValueError, match="4096"):
    specgan.hop_length(4096)
  with pytest.raises(ValueError, match="4096"):
    specgan.SpecGANGenerator(dim=2, slice_len=4096).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 100)))
  with pytest.raises(ValueError, match="num_channels must be 1, got 2"):
    specgan.SpecGANGenerator(dim=2, slice_len=8192, num_channels=2).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 100)))
  with pytest.raises(ValueError, match=r"\(1, 8192, 2\)"):
    specgan.log_magnitude(jnp.zeros((1, 8192, 2)), 8192)
  with pytest.raises(ValueError, match=r"\(1, 8000\)"):
    specgan.log_magnitude(jnp.zeros((1, 8000)), 8192)


def _assert_same_as_flax(fast, reference, x):
  """`fast` has `reference`'s parameters and gives its outputs and
  gradients (in the parameters and the input) at random parameters."""
  params = reference.init(jax.random.PRNGKey(1), x)
  params = jax.tree.map(
      lambda p: p + jax.random.normal(jax.random.PRNGKey(2), p.shape), params)
  assert jax.tree.map(jnp.shape, fast.init(jax.random.PRNGKey(1), x)) == (
      jax.tree.map(jnp.shape, params))
  np.testing.assert_allclose(fast.apply(params, x), reference.apply(params, x),
                             atol=2e-5)
  loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  for got, want in zip(
      jax.tree.leaves(jax.grad(loss(fast), argnums=(0, 1))(params, x)),
      jax.tree.leaves(jax.grad(loss(reference), argnums=(0, 1))(params, x))):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel_size, stride", [(5, 2), (4, 2), (3, 2),
                                                 (5, 3)])
def test_subpixel_transposed_convolution_equals_flax_conv_transpose(
    kernel_size, stride):
  # Same parameters, same numbers (and gradients) as the dilated form.
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 7, 3))
  reference = nn.ConvTranspose(4, (kernel_size, kernel_size),
                               strides=(stride, stride), padding="SAME")
  _assert_same_as_flax(specgan.SubpixelConvTranspose(4, kernel_size, stride),
                       reference, x)


@pytest.mark.parametrize("kernel_size, stride, height", [
    (5, 2, 8), (4, 2, 6), (3, 2, 4), (5, 3, 9)])
def test_phase_split_convolution_equals_flax_strided_conv(kernel_size, stride,
                                                         height):
  x = jax.random.normal(jax.random.PRNGKey(0),
                        (2, height, height + 2 * stride, 3))
  reference = nn.Conv(4, (kernel_size, kernel_size), strides=(stride, stride),
                      padding="SAME")
  _assert_same_as_flax(specgan.PhaseSplitConv(4, kernel_size, stride),
                       reference, x)


def test_phase_split_convolution_names_an_indivisible_input():
  with pytest.raises(ValueError, match=r"divisible by 2, got shape "
                     r"\(1, 5, 4, 1\)"):
    specgan.strided_conv(jnp.zeros((1, 5, 4, 1)), jnp.zeros((5, 5, 1, 1)),
                         jnp.zeros(1), 2)
