"""Tests for wavegan_jax.models.acoustic."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wavegan_jax.models import acoustic

TINY = dict(sample_rate=8000, hop_length=64, n_fft=128, num_mels=16,
            conv_channels=(4, 8), conv_strides=(8, 8), conv_kernel=9,
            lstm_features=16, context_features=8, style_features=6)


def _audio(batch=2, samples=1024, seed=0):
  """Chirps with noise: a signal with some spectral structure."""
  rng = np.random.default_rng(seed)
  t = np.arange(samples) / 8000.0
  freqs = rng.uniform(200, 2000, size=(batch, 1))
  audio = 0.5 * np.sin(2 * np.pi * freqs * t * (1 + 2 * t))
  audio += 0.05 * rng.normal(size=(batch, samples))
  return jnp.asarray(audio, jnp.float32)


@pytest.mark.parametrize("frontend,width", [("logmel", 16), ("conv", 8)])
def test_shapes_and_encode_matches_call(frontend, width):
  model = acoustic.AcousticModel(frontend=frontend, **TINY)
  audio = _audio()
  params = model.init(jax.random.key(0), audio)
  out = model.apply(params, audio)
  assert out["features"].shape == (2, 16, width)
  assert out["context"].shape == (2, 16, 8)
  assert out["style"].shape == (2, 6)
  assert out["reconstruction"].shape == (2, 16, 16)
  assert out["target"].shape == (2, 16, 16)
  for value in out.values():
    assert value.dtype == jnp.float32
  context, style = model.apply(params, audio, method=model.encode)
  np.testing.assert_allclose(context, out["context"], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(style, out["style"], rtol=1e-6, atol=1e-6)


def test_logmel_target_is_the_normalised_spectrogram():
  from wavegan_jax import spectral  # pylint: disable=import-outside-toplevel
  model = acoustic.AcousticModel(**TINY)
  audio = _audio()
  params = model.init(jax.random.key(0), audio)
  out = model.apply(params, audio)
  mels = spectral.log_mel_spectrogram(audio, 8000, 128, 64, 16,
                                      drop_last=True)
  np.testing.assert_allclose(out["target"], (mels + 7.0) / 4.0, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_array_equal(out["features"], out["target"])


def test_bad_configs_and_inputs_raise_clear_errors():
  audio = _audio()
  with pytest.raises(ValueError, match=r"multiply to 32, not hop_length=64"):
    acoustic.AcousticModel(frontend="conv", **{
        **TINY, "conv_strides": (4, 8)}).init(jax.random.key(0), audio)
  with pytest.raises(ValueError, match="frontend must be one of"):
    acoustic.AcousticModel(frontend="mfcc", **TINY).init(
        jax.random.key(0), audio)
  with pytest.raises(ValueError, match="1000 is not a multiple of hop_length"):
    acoustic.AcousticModel(**TINY).init(jax.random.key(0), audio[:, :1000])


@pytest.mark.parametrize("frontend", ["logmel", "conv"])
def test_gradients_flow_and_adam_reduces_reconstruction_loss(frontend):
  model = acoustic.AcousticModel(frontend=frontend, **TINY)
  audio = _audio(batch=4)
  params = model.init(jax.random.key(0), audio)
  optimizer = optax.adam(1e-2)

  def loss_fn(p):
    out = model.apply(p, audio)
    return jnp.mean((out["reconstruction"] - out["target"]) ** 2)

  @jax.jit
  def step(p, opt_state):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(p, updates), opt_state, loss, grads

  opt_state = optimizer.init(params)
  first = None
  for _ in range(40):
    params, opt_state, loss, grads = step(params, opt_state)
    if first is None:
      first = loss
      # Every parameter leaf gets a non-zero gradient.
      for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert np.abs(np.asarray(leaf)).max() > 0, path
  assert float(loss) < 0.3 * float(first)


def test_default_parameter_counts_match_docstring():
  audio = jax.ShapeDtypeStruct((1, 8192), jnp.float32)
  counts = {}
  for frontend in ("logmel", "conv"):
    model = acoustic.AcousticModel(frontend=frontend)
    counts[frontend] = acoustic.count_params(
        jax.eval_shape(model.init, jax.random.key(0), audio))
  assert counts == {"logmel": 510_144, "conv": 1_242_432}
