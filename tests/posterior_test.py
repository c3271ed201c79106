"""Tests of the posterior over the AV generator's noise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax import losses
from wavegan_jax.models import posterior


def _init(audio, latent_dim=4):
  model = posterior.PosteriorEncoder(latent_dim=latent_dim, channels=8)
  return model, model.init(jax.random.PRNGKey(0), audio)["params"]


def test_starts_as_the_prior_and_has_one_vector_per_clip():
  audio = jax.random.normal(jax.random.PRNGKey(1), (3, 2048)) * 0.1
  model, params = _init(audio)
  mean, log_variance = model.apply({"params": params}, audio)
  assert mean.shape == log_variance.shape == (3, 4)
  np.testing.assert_array_equal(np.asarray(mean), 0.0)
  np.testing.assert_array_equal(np.asarray(log_variance), 0.0)
  assert float(losses.gaussian_kl(mean, log_variance)) == 0.0


def test_different_clips_get_different_posteriors_once_trained_a_step():
  # The statistics start at zero; one gradient step on a loss that wants
  # the mean to follow the clip's loudness makes clips differ.
  audio = jnp.stack([jnp.sin(jnp.arange(2048) * 0.3) * a
                     for a in (0.01, 0.5)])
  model, params = _init(audio)

  def loss(p):
    mean, _ = model.apply({"params": p}, audio)
    return jnp.sum((mean[:, 0] - jnp.array([-1.0, 1.0])) ** 2)

  grads = jax.grad(loss)(params)
  params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
  mean, _ = model.apply({"params": params}, audio)
  assert float(loss(params)) < 2.0  # 2.0 at initialisation.
  assert float(mean[1, 0] - mean[0, 0]) > 0


@pytest.mark.parametrize("shape", [(2048,), (2, 100), (2, 1, 2048)])
def test_bad_audio_shape_is_named(shape):
  model = posterior.PosteriorEncoder(latent_dim=4)
  with pytest.raises(ValueError, match="PosteriorEncoder needs audio"):
    model.init(jax.random.PRNGKey(0), jnp.zeros(shape))
