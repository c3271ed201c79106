"""Tests for the multi-resolution STFT discriminator (tiny configurations)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax import losses
from wavegan_jax.models import stft_discriminator

FFT_SIZES = (64, 32)
NUM_LAYERS = 2
CHANNELS = 4
SAMPLES = 512


def _model(**kwargs):
  return stft_discriminator.MultiResolutionSTFTDiscriminator(
      fft_sizes=FFT_SIZES, channels=CHANNELS, num_layers=NUM_LAYERS, **kwargs)


def _audio(batch=3, seed=0):
  return jax.random.normal(jax.random.PRNGKey(seed), (batch, SAMPLES))


@pytest.fixture(scope="module")
def model_and_params():
  model = _model()
  return model, model.init(jax.random.PRNGKey(1), _audio())


def test_logits_and_feature_shapes(model_and_params):
  model, params = model_and_params
  audio = _audio()
  logits, features = model.apply(params, audio, return_features=True)
  assert logits.shape == (3,)
  assert len(features) == len(FFT_SIZES) * NUM_LAYERS
  # Hop n_fft // 4; bins halve per layer (odd counts are padded first).
  expected = [(3, 33, 17, CHANNELS), (3, 33, 9, CHANNELS),
              (3, 65, 9, CHANNELS), (3, 65, 5, CHANNELS)]
  assert [f.shape for f in features] == expected
  np.testing.assert_allclose(model.apply(params, audio), logits, rtol=1e-6)
  np.testing.assert_allclose(model.apply(params, audio[..., None]), logits,
                             rtol=1e-6)


def test_logits_are_the_mean_over_resolutions(model_and_params):
  model, params = model_and_params
  audio = _audio()
  per_resolution = []
  for n_fft in FFT_SIZES:
    sub = stft_discriminator.SpectrogramDiscriminator(
        n_fft=n_fft, hop_length=n_fft // 4, channels=CHANNELS,
        num_layers=NUM_LAYERS)
    logits, _ = sub.apply(
        {"params": params["params"][f"resolution_{n_fft}"]}, audio)
    per_resolution.append(logits)
  np.testing.assert_allclose(model.apply(params, audio),
                             sum(per_resolution) / 2, rtol=1e-5)


def test_examples_are_not_mixed(model_and_params):
  model, params = model_and_params
  audio = _audio()
  changed = audio.at[0].set(jnp.zeros(SAMPLES))
  before, after = model.apply(params, audio), model.apply(params, changed)
  assert float(jnp.abs(before[0] - after[0])) > 0
  np.testing.assert_allclose(before[1:], after[1:], rtol=1e-6)


def test_complex_input_kind():
  model = _model(input_kind="complex")
  params = model.init(jax.random.PRNGKey(2), _audio())
  kernel = params["params"]["resolution_64"]["conv_0"]["kernel"]
  assert kernel.shape == (3, 5, 4, CHANNELS)  # real, imag x 2 bins
  assert model.apply(params, _audio()).shape == (3,)


def test_gradients_for_generator_and_wgan_gp(model_and_params):
  model, params = model_and_params
  real, fake = _audio(seed=3), _audio(seed=4)

  def generator_objective(audio):
    logits, fake_features = model.apply(params, audio, return_features=True)
    _, real_features = model.apply(params, real, return_features=True)
    return (losses.generator_loss("hinge", logits)
            + losses.feature_matching_loss(real_features, fake_features))

  audio_grad = jax.jit(jax.grad(generator_objective))(fake)
  assert audio_grad.shape == fake.shape
  assert float(jnp.abs(audio_grad).max()) > 0

  def critic_objective(variables):
    critic = lambda audio: model.apply(variables, audio)
    return (losses.discriminator_loss("wgan-gp", critic(real), critic(fake))
            + 10 * losses.gradient_penalty(critic, real, fake,
                                           jax.random.PRNGKey(5)))

  param_grads = jax.jit(jax.grad(critic_objective))(params)
  leaves = jax.tree_util.tree_leaves(param_grads)
  assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
  assert sum(float(jnp.abs(leaf).sum()) for leaf in leaves) > 0


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match=r"got shape \(2, 3, 512\)"):
    _model().init(jax.random.PRNGKey(0), jnp.zeros((2, 3, SAMPLES)))
  with pytest.raises(ValueError, match="Unknown input_kind 'mel'"):
    _model(input_kind="mel").init(jax.random.PRNGKey(0), _audio())
  with pytest.raises(ValueError, match="differ in length"):
    _model(hop_sizes=(16,)).init(jax.random.PRNGKey(0), _audio())
