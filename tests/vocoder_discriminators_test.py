"""Tests of the GAN-vocoder critics and the patch-map losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax import losses
from wavegan_jax.models import vocoder_discriminators as vd


def test_fold_time_pads_and_moves_neighbours_into_channels():
  x = jnp.arange(2 * 7 * 2, dtype=jnp.float32).reshape(2, 7, 2)
  folded = vd.fold_time(x, 3)
  assert folded.shape == (2, 3, 6)
  # Row t holds samples 3t, 3t+1, 3t+2, each with its channels.
  np.testing.assert_array_equal(folded[0, 1], np.asarray(x[0, 3:6]).ravel())
  np.testing.assert_array_equal(folded[1, 2, :2], x[1, 6])
  np.testing.assert_array_equal(folded[1, 2, 2:], 0.0)


def _discriminator():
  return vd.VocoderDiscriminator(periods=(2, 3), period_channels=(4, 8),
                                 fft_sizes=(128, 64), spectrogram_channels=4)


def test_vocoder_discriminator_maps_and_features():
  disc = _discriminator()
  audio = jax.random.normal(jax.random.PRNGKey(0), (3, 1024))
  params = disc.init(jax.random.PRNGKey(1), audio)
  logits, features = disc.apply(params, audio, return_features=True)
  assert len(logits) == 4
  # Period p: 1024 / p samples per phase folded by 3 twice, p phases.
  assert logits[0].shape == (3, 2 * 57)
  assert logits[1].shape == (3, 3 * 38)
  assert all(x.ndim == 2 and x.shape[0] == 3 for x in logits)
  assert len(features) == 2 * 2 + 2 * 3
  # [B, N, 1] is read as [B, N].
  again = disc.apply(params, audio[..., None])
  for a, b in zip(logits, again):
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_vocoder_discriminator_scores_each_example_alone():
  disc = _discriminator()
  audio = jax.random.normal(jax.random.PRNGKey(0), (2, 512))
  params = disc.init(jax.random.PRNGKey(1), audio)

  def first_score(x):
    return losses.mean_logit([m[0] for m in disc.apply(params, x)])

  grad = jax.grad(first_score)(audio)
  assert float(jnp.max(jnp.abs(grad[1]))) == 0.0
  assert float(jnp.max(jnp.abs(grad[0]))) > 0.0


def test_vocoder_discriminator_without_subdiscriminators_is_named():
  disc = vd.VocoderDiscriminator(periods=(), fft_sizes=())
  with pytest.raises(ValueError, match="at least one period"):
    disc.init(jax.random.PRNGKey(0), jnp.zeros((1, 256)))
  with pytest.raises(ValueError, match=r"audio \[B, N\]"):
    _discriminator().init(jax.random.PRNGKey(0), jnp.zeros((1, 256, 2)))


@pytest.mark.parametrize("kind", ["lsgan", "hinge"])
def test_map_list_losses_are_the_mean_of_each_maps_loss(kind):
  rng = np.random.default_rng(0)
  real = [jnp.asarray(rng.normal(size=(4, n))) for n in (5, 9, 2)]
  fake = [jnp.asarray(rng.normal(size=(4, n))) for n in (5, 9, 2)]
  want_d = np.mean([losses.discriminator_loss(kind, r, f)
                    for r, f in zip(real, fake)])
  want_g = np.mean([losses.generator_loss(kind, f) for f in fake])
  np.testing.assert_allclose(losses.discriminator_loss(kind, real, fake),
                             want_d, rtol=1e-6)
  np.testing.assert_allclose(losses.generator_loss(kind, fake), want_g,
                             rtol=1e-6)
  np.testing.assert_allclose(
      losses.mean_logit(real), np.mean([np.mean(r) for r in real]),
      rtol=1e-6)


def test_map_list_losses_reject_wgan_and_mismatches():
  maps = [jnp.zeros((2, 3))]
  with pytest.raises(ValueError, match="'hinge' or 'lsgan'"):
    losses.discriminator_loss("wgan-gp", maps, maps)
  with pytest.raises(ValueError, match="equally many maps"):
    losses.discriminator_loss("lsgan", maps, maps + maps)
  with pytest.raises(ValueError, match="both be arrays or lists"):
    losses.discriminator_loss("lsgan", maps, jnp.zeros((2,)))
