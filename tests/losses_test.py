"""Tests for wavegan_jax.losses on hand-computed cases."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.stats

from wavegan_jax import losses

REAL = jnp.array([2.0, 0.5, -1.0])
FAKE = jnp.array([-2.0, 0.0, 1.5])


def _noise(shape, seed=0):
  return jnp.asarray(
      np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_waveform_mse_value_and_channel_axis():
  pred = jnp.array([[1.0, 2.0], [0.0, 0.0]])[..., None]
  target = jnp.array([[0.0, 0.0], [0.0, 2.0]])
  assert float(losses.waveform_mse(pred, target)) == pytest.approx(9 / 4)
  with pytest.raises(ValueError, match=r"\(2, 3\) does not match .* \(2, 2\)"):
    losses.waveform_mse(jnp.zeros((2, 3)), target)


def test_mr_stft_zero_for_identical_and_positive_otherwise():
  target = _noise((2, 2048))
  same = losses.multi_resolution_stft_loss(target, target)
  for name in ("spectral_convergence", "log_magnitude", "total"):
    assert float(same[name]) == 0.0
  other = losses.multi_resolution_stft_loss(0.5 * target, target)
  assert float(other["spectral_convergence"]) == pytest.approx(0.5, rel=1e-4)
  assert float(other["log_magnitude"]) == pytest.approx(np.log(2), rel=1e-3)
  assert float(other["total"]) == pytest.approx(
      float(other["spectral_convergence"] + other["log_magnitude"]))


def test_mr_stft_zero_prediction_has_unit_convergence():
  target = _noise((2, 2048), seed=1)
  result = losses.multi_resolution_stft_loss(jnp.zeros_like(target), target)
  assert float(result["spectral_convergence"]) == pytest.approx(1.0, abs=1e-4)


def test_mr_stft_single_resolution_equals_numpy_reference():
  pred, target = _noise((2, 1024), 2), _noise((2, 1024), 3)
  def mags(audio):
    spec = librosa.stft(np.asarray(audio), n_fft=256, hop_length=64,
                        win_length=128, pad_mode="reflect")
    return np.sqrt(np.maximum(np.abs(spec) ** 2, 1e-7))
  pred_mag, target_mag = mags(pred), mags(target)
  result = losses.multi_resolution_stft_loss(pred, target, (256,), (64,),
                                             (128,))
  assert float(result["spectral_convergence"]) == pytest.approx(
      np.linalg.norm(target_mag - pred_mag) / np.linalg.norm(target_mag),
      rel=1e-4)
  assert float(result["log_magnitude"]) == pytest.approx(
      np.mean(np.abs(np.log(target_mag) - np.log(pred_mag))), rel=1e-4)


def test_mr_stft_silent_target_is_finite_in_value_and_gradient():
  target = jnp.zeros((2, 1024))
  def total(pred):
    return losses.multi_resolution_stft_loss(pred, target)["total"]
  value_and_grad = jax.jit(jax.value_and_grad(total))
  for pred in (jnp.zeros((2, 1024)), _noise((2, 1024), 4)):
    value, grad = value_and_grad(pred)
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_mr_stft_rejects_mismatched_resolutions():
  with pytest.raises(ValueError, match="equally many"):
    losses.multi_resolution_stft_loss(jnp.zeros((1, 512)), jnp.zeros((1, 512)),
                                      (128, 64), (32,), (128, 64))


def test_adversarial_values():
  cases = {
      ("wgan-gp", "d"): -2.0 / 3, ("wgan-gp", "g"): 1.0 / 6,
      ("hinge", "d"): 2.0, ("hinge", "g"): 1.0 / 6,
      ("lsgan", "d"): 0.5 * (5.25 + 6.25) / 3, ("lsgan", "g"): 10.25 / 6,
  }
  for (kind, player), expected in cases.items():
    value = (losses.discriminator_loss(kind, REAL, FAKE) if player == "d"
             else losses.generator_loss(kind, FAKE))
    assert float(value) == pytest.approx(expected, rel=1e-6), (kind, player)
  assert float(losses.hinge_discriminator_loss(REAL, FAKE)) == 2.0
  assert float(losses.least_squares_generator_loss(FAKE)) == pytest.approx(
      10.25 / 6)


def test_unknown_adversarial_kind_is_named():
  with pytest.raises(ValueError, match="Unknown adversarial loss kind 'bce'"):
    losses.discriminator_loss("bce", REAL, FAKE)
  with pytest.raises(ValueError, match="'wgan'; expected one of wgan-gp"):
    losses.generator_loss("wgan", FAKE)


def _linear_critic(w):
  return lambda x: x.reshape(x.shape[0], -1) @ w


def test_gradient_penalty_linear_critic():
  real, fake = _noise((4, 3, 2), 5), _noise((4, 3, 2), 6)
  rng = jax.random.PRNGKey(0)
  unit = jnp.array([0.5, 0.5, 0.0, -0.5, 0.0, 0.5])  # exactly unit norm
  assert float(losses.gradient_penalty(_linear_critic(unit), real, fake,
                                       rng)) == 0.0
  w = jnp.arange(6.0)
  norm = float(jnp.linalg.norm(w))
  penalty = losses.gradient_penalty(_linear_critic(w), real, fake, rng)
  assert float(penalty) == pytest.approx((norm - 1) ** 2, rel=1e-6)
  # Differentiable in the critic's parameters: d/dw (||w|| - 1)^2.
  grad = jax.grad(lambda v: losses.gradient_penalty(
      _linear_critic(v), real, fake, rng))(w)
  np.testing.assert_allclose(grad, 2 * (norm - 1) * w / norm, rtol=1e-5)


def test_gradient_penalty_uses_one_alpha_per_example():
  # critic(x) = sum x^2 has gradient 2 x; with real = 0 and fake_i = e_0 / 2
  # the gradient norm at x_i = alpha_i fake_i is alpha_i.
  batch = 16
  real = jnp.zeros((batch, 5))
  fake = jnp.zeros((batch, 5)).at[:, 0].set(0.5)
  rng = jax.random.PRNGKey(3)
  penalty = losses.gradient_penalty(lambda x: jnp.sum(x ** 2, -1), real, fake,
                                    rng)
  alpha = jax.random.uniform(rng, (batch, 1))
  assert float(jnp.std(alpha)) > 0.1
  assert float(penalty) == pytest.approx(float(jnp.mean((alpha - 1) ** 2)),
                                         rel=1e-5)


def test_gradient_penalty_finite_second_order_at_zero_gradient():
  real = jnp.zeros((2, 3))
  grad = jax.grad(lambda w: losses.gradient_penalty(
      _linear_critic(w), real, real, jax.random.PRNGKey(0)))(jnp.zeros(3))
  assert np.all(np.isfinite(np.asarray(grad)))


def test_feature_matching_loss_value_and_stop_gradient():
  real = [jnp.ones((2, 3)), jnp.zeros((2, 2, 2))]
  fake = [jnp.zeros((2, 3)), jnp.full((2, 2, 2), -3.0)]
  assert float(losses.feature_matching_loss(real, fake)) == 2.0
  grad_real = jax.grad(lambda r: losses.feature_matching_loss([r], [fake[0]]))(
      real[0])
  assert float(jnp.abs(grad_real).sum()) == 0.0
  with pytest.raises(ValueError, match="2 real and 1 fake"):
    losses.feature_matching_loss(real, fake[:1])
  with pytest.raises(ValueError, match=r"layer 0 .* \(2, 3\) .* \(3, 2\)"):
    losses.feature_matching_loss([real[0]], [jnp.zeros((3, 2))])


def test_regularisers():
  params = {"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
            "conv": {"kernel": jnp.full((1, 2, 2), 2.0)}}
  assert float(losses.weight_decay(params)) == 11.0
  assert float(losses.latent_l2(jnp.array([[1.0, 2.0], [3.0, 0.0]]))) == 3.5
  assert float(losses.gaussian_kl(jnp.zeros((4, 3)), jnp.zeros((4, 3)))) == 0.0
  kl = losses.gaussian_kl(jnp.array([[1.0, 0.0]]),
                          jnp.array([[0.0, np.log(2.0)]]))
  assert float(kl) == pytest.approx(0.5 + 0.5 * (1 - np.log(2.0)), rel=1e-6)


def test_mode_seeking_loss_value_gradient_and_bad_batches():
  # The pairs are rows (0, 2) and (1, 3).
  outputs = jnp.array([[0.0, 1.0], [2.0, 2.0], [1.0, 1.0], [5.0, 2.0]])
  latents = jnp.array([[0.0], [0.0], [4.0], [-4.0]])
  loss, ratio = losses.mode_seeking_loss(outputs, latents, eps=0.0)
  # |0-1| + |1-1| + |2-5| + |2-2| = 4 over 4 elements: 1; latents: 4.
  assert float(ratio) == pytest.approx(0.25)
  assert float(loss) == pytest.approx(4.0)
  # Moving the pairs apart lowers the loss.
  grad = jax.grad(lambda x: losses.mode_seeking_loss(x, latents)[0])(outputs)
  step = outputs - 0.1 * grad
  assert float(losses.mode_seeking_loss(step, latents)[0]) < float(loss)
  same = jnp.ones((2, 3))
  # Coinciding outputs: a large, finite loss.
  assert np.isfinite(float(losses.mode_seeking_loss(same, latents[1:3])[0]))
  with pytest.raises(ValueError, match="even batch .* 3 outputs"):
    losses.mode_seeking_loss(outputs[:3], latents[:3])
  with pytest.raises(ValueError, match="4 outputs and 2 latents"):
    losses.mode_seeking_loss(outputs, latents[:2])


def test_frame_loudness_db_known_levels():
  # A full-scale square wave is 0 dB, one at 0.01 is -40 dB (plus the
  # floor's power), silence sits at the floor; the partial frame is dropped.
  clips = np.zeros((2, 40, 1), np.float32)
  clips[0, :20] = 1.0
  clips[0, 20:] = -1.0
  clips[1, :10] = 0.01
  db = np.asarray(losses.frame_loudness_db(jnp.asarray(clips), 10))
  assert db.shape == (2, 4, 1)
  np.testing.assert_allclose(db[0, :, 0], 0.0, atol=1e-5)
  np.testing.assert_allclose(db[1, :, 0], [10 * np.log10(1e-4 + 1e-7), -70.0,
                                           -70.0, -70.0], atol=1e-4)
  with pytest.raises(ValueError, match="clips of 40 samples are shorter "
                                       "than one frame of 64"):
    losses.frame_loudness_db(jnp.asarray(clips), 64)


def test_loudness_distance_is_wasserstein_and_pulls_toward_real():
  rng = np.random.default_rng(0)
  generated = rng.normal(size=(4, 512, 1)).astype(np.float32) * 0.01
  real = rng.normal(size=(4, 512, 1)).astype(np.float32) * 0.1
  real[:, 300:] = 0.0
  db = lambda a: np.asarray(losses.frame_loudness_db(jnp.asarray(a), 32))
  distance = losses.loudness_distance(jnp.asarray(generated),
                                      jnp.asarray(real), 32)
  assert float(distance) == pytest.approx(scipy.stats.wasserstein_distance(
      db(generated).ravel(), db(real).ravel()), rel=1e-5)
  assert float(losses.loudness_distance(jnp.asarray(real), jnp.asarray(real),
                                        32)) == 0.0
  # A real batch of another size is read at the generated quantiles.
  two = losses.loudness_distance(jnp.asarray(generated), jnp.asarray(real[:2]),
                                 32)
  assert float(two) == pytest.approx(scipy.stats.wasserstein_distance(
      db(generated).ravel(), db(real[:2]).ravel()), rel=0.02)
  grad = jax.grad(lambda g: losses.loudness_distance(g, jnp.asarray(real),
                                                     32))(
                                                         jnp.asarray(generated))
  moved = jnp.asarray(generated) - 1e-4 * grad / jnp.max(jnp.abs(grad))
  assert float(losses.loudness_distance(moved, jnp.asarray(real),
                                        32)) < float(distance)
  with pytest.raises(ValueError, match=r"clips of one shape, got generated "
                                       r"\(512, 1\) and real \(256, 1\)"):
    losses.loudness_distance(jnp.asarray(generated),
                             jnp.asarray(real[:, :256]), 32)


def test_weighted_sum_skips_zero_weights_and_names_unknown_terms():
  def never_called():
    raise AssertionError("a zero-weight callable term was computed")
  terms = {"waveform_mse": jnp.array(2.0), "stft": lambda: jnp.array(4.0),
           "kl": jnp.array(np.nan), "adversarial": never_called}
  weights = {"waveform_mse": 1.0, "stft": 0.5, "adversarial": 0.0}
  total, values = losses.weighted_sum(terms, weights)
  assert float(total) == 4.0
  assert set(values) == {"waveform_mse", "stft", "kl"}
  assert float(values["stft"]) == 4.0
  groups = losses.group_totals(values, weights)
  assert {k: float(v) for k, v in groups.items()} == {
      "reconstruction": 4.0, "regularisation": 0.0, "adversarial": 0.0}
  with pytest.raises(ValueError, match="unknown term.* feature_matching"):
    losses.weighted_sum(terms, {"feature_matching": 10.0})
  with pytest.raises(ValueError, match="every term has weight 0"):
    losses.weighted_sum({"kl": 1.0}, {"kl": 0.0})


def test_weighted_sum_under_jit_and_grad():
  def objective(scale):
    return losses.weighted_sum({"latent_l2": losses.latent_l2(scale * jnp.ones(
        (2, 3)))}, {"latent_l2": 2.0})[0]
  assert float(jax.jit(jax.grad(objective))(1.0)) == pytest.approx(6.0)
