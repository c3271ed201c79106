"""Tests for wavegan_jax.training.state: the shared train state and Adam."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wavegan_jax.training import state as state_lib


def _params():
  return {'generator': {'w': jnp.array([1.0, -2.0, 3.0])},
          'discriminator': {'w': jnp.array([[0.5, 0.5]])}}


def _optimizers(learning_rate=0.1):
  return {name: state_lib.make_optimizer(learning_rate)
          for name in ('generator', 'discriminator')}


def test_create_train_state_has_one_shape_for_every_stage():
  state = state_lib.create_train_state(_params(), _optimizers(),
                                       ema_decay=0.99,
                                       ema_models=('generator',))
  assert sorted(state) == ['ema_params', 'opt_state', 'params', 'step']
  assert state['step'].dtype == jnp.int32 and int(state['step']) == 0
  assert sorted(state['opt_state']) == ['discriminator', 'generator']
  assert list(state['ema_params']) == ['generator']
  np.testing.assert_array_equal(state['ema_params']['generator']['w'],
                                [1.0, -2.0, 3.0])
  assert state_lib.create_train_state(_params(), _optimizers())[
      'ema_params'] == {}


def test_create_train_state_rejects_mismatched_models():
  with pytest.raises(ValueError, match=r"params and optimizers must name the "
                     r"same models; got params \['discriminator', "
                     r"'generator'\] and optimizers \['generator'\]"):
    state_lib.create_train_state(
        _params(), {'generator': state_lib.make_optimizer(0.1)})
  with pytest.raises(ValueError, match=r"ema_models \['critic'\] are not "
                     r'models'):
    state_lib.create_train_state(_params(), _optimizers(), ema_decay=0.9,
                                 ema_models=('critic',))


def test_apply_gradients_is_adams_first_step_on_one_model_only():
  state = state_lib.create_train_state(_params(), _optimizers(0.1),
                                       ema_decay=0.9,
                                       ema_models=('generator',))
  grads = {'w': jnp.array([0.5, -4.0, 0.0])}
  new = state_lib.apply_gradients(state, 'generator', grads,
                                  _optimizers(0.1)['generator'],
                                  ema_decay=0.9)
  # Adam's first step is -lr * g / (|g| + eps) (bias corrections cancel).
  expected = np.array([1.0 - 0.1, -2.0 + 0.1, 3.0])
  np.testing.assert_allclose(new['params']['generator']['w'], expected,
                             rtol=1e-6)
  np.testing.assert_allclose(new['ema_params']['generator']['w'],
                             0.9 * np.array([1.0, -2.0, 3.0])
                             + 0.1 * expected, rtol=1e-6)
  assert new['params']['discriminator'] is state['params']['discriminator']
  assert int(new['step']) == 0
  assert int(state_lib.increment_step(new)['step']) == 1


def test_apply_gradients_requires_the_ema_decay_iff_ema_is_kept():
  state = state_lib.create_train_state(_params(), _optimizers(),
                                       ema_decay=0.9,
                                       ema_models=('generator',))
  optimizer = _optimizers()['generator']
  grads = {'w': jnp.zeros(3)}
  with pytest.raises(ValueError, match="Model 'generator' has EMA params "
                     'but ema_decay=None'):
    state_lib.apply_gradients(state, 'generator', grads, optimizer)
  with pytest.raises(KeyError, match="No model 'critic'"):
    state_lib.apply_gradients(state, 'critic', grads, optimizer)


def test_ema_decay_warms_up_then_holds_and_averaged_params_picks_the_copy():
  # min(decay, (1 + t) / (10 + t)): 0.1 at the first update, 0.5 at t = 8.
  np.testing.assert_allclose(
      [float(state_lib.ema_decay_at(0.999, t)) for t in (0, 8, 90, 10**6)],
      [0.1, 0.5, 0.91, 0.999], rtol=1e-6)
  state = state_lib.create_train_state(_params(), _optimizers(),
                                       ema_decay=0.9,
                                       ema_models=('generator',))
  state['ema_params'] = {'generator': {'w': jnp.zeros(3)}}
  np.testing.assert_array_equal(
      state_lib.averaged_params(state, 'generator')['w'], np.zeros(3))
  assert (state_lib.averaged_params(state, 'discriminator') is
          state['params']['discriminator'])


def test_apply_gradients_jits_and_differentiates_a_gan_like_step():
  optimizers = _optimizers(0.01)
  state = state_lib.create_train_state(_params(), optimizers)

  @jax.jit
  def step(state):
    grads = jax.grad(lambda p: jnp.sum(p['w'] ** 2))(
        state['params']['discriminator'])
    state = state_lib.apply_gradients(state, 'discriminator', grads,
                                      optimizers['discriminator'])
    return state_lib.increment_step(state)

  for _ in range(3):
    state = step(state)
  assert int(state['step']) == 3
  np.testing.assert_allclose(state['params']['discriminator']['w'],
                             [[0.47, 0.47]], rtol=1e-4)


def _learning_rates(optimizer, num_steps):
  """The learning rate of each of num_steps updates."""
  params = {'w': jnp.zeros(2)}
  opt_state = optimizer.init(params)
  rates = []
  for _ in range(num_steps):
    _, opt_state = optimizer.update({'w': jnp.ones(2)}, opt_state, params)
    rates.append(float(state_lib.learning_rate_of(opt_state)))
  return rates


def test_make_optimizer_warmup_then_cosine_learning_rate():
  optimizer = state_lib.make_optimizer(1.0, warmup_steps=2,
                                       schedule='cosine', total_steps=6)
  # Warm-up 0, 0.5; then cosine over 4 steps: 1, 0.854, 0.5, 0.146.
  np.testing.assert_allclose(_learning_rates(optimizer, 6),
                             [0.0, 0.5, 1.0, 0.8535534, 0.5, 0.1464466],
                             atol=1e-6)


@pytest.mark.parametrize('warmup_steps, expected', [
    # Held at 1 for 3 steps, then cosine over 4: 1, 0.854, 0.5, 0.146.
    (0, [1.0, 1.0, 1.0, 1.0, 0.8535534, 0.5, 0.1464466]),
    # Warm-up 0, 0.5; held until step 3; then the same cosine.
    (2, [0.0, 0.5, 1.0, 1.0, 0.8535534, 0.5, 0.1464466]),
])
def test_make_optimizer_holds_the_rate_until_decay_start(warmup_steps,
                                                          expected):
  optimizer = state_lib.make_optimizer(
      1.0, warmup_steps=warmup_steps, schedule='cosine', total_steps=7,
      decay_start=3)
  np.testing.assert_allclose(_learning_rates(optimizer, 7), expected,
                             atol=1e-6)
  with pytest.raises(ValueError, match='> decay_start=7; got total_steps=7'):
    state_lib.make_optimizer(1.0, schedule='cosine', total_steps=7,
                             decay_start=7)


def test_make_optimizer_weight_decay_and_clip():
  params = {'w': jnp.array([2.0, 0.0])}
  grads = {'w': jnp.array([30.0, 40.0])}  # Global norm 50.
  adamw = state_lib.make_optimizer(0.1, weight_decay=0.5, grad_clip_norm=5.0)
  updates, opt_state = adamw.update(grads, adamw.init(params), params)
  # Adam's -lr * sign(g), plus decoupled decay -lr * wd * w.
  np.testing.assert_allclose(updates['w'], [-0.1 - 0.1 * 0.5 * 2.0, -0.1],
                             rtol=1e-5)
  # The first moment saw the clipped gradient: (1 - b1) * g * 5 / 50.
  np.testing.assert_allclose(optax.tree_utils.tree_get(opt_state, 'mu')['w'],
                             [0.3, 0.4], rtol=1e-5)
  with pytest.raises(ValueError, match='schedule=cosine needs total_steps'):
    state_lib.make_optimizer(0.1, schedule='cosine')
  with pytest.raises(ValueError, match="schedule must be 'constant' or "
                     "'cosine', got 'linear'"):
    state_lib.make_optimizer(0.1, schedule='linear')


def test_make_optimizer_clip_norm_zero_or_none_means_no_clipping():
  params = {'w': jnp.array([2.0, 0.0])}
  grads = {'w': jnp.array([30.0, 40.0])}
  for clip in (0.0, None):
    adam = state_lib.make_optimizer(0.1, grad_clip_norm=clip)
    _, opt_state = adam.update(grads, adam.init(params), params)
    # The first moment saw the whole gradient: (1 - b1) * g.
    np.testing.assert_allclose(
        optax.tree_utils.tree_get(opt_state, 'mu')['w'], [3.0, 4.0],
        rtol=1e-5)


def test_step_rng_and_global_norm():
  base = jax.random.PRNGKey(3)
  np.testing.assert_array_equal(state_lib.step_rng(base, 5),
                                jax.random.fold_in(base, 5))
  assert not np.array_equal(state_lib.step_rng(base, 5),
                            state_lib.step_rng(base, 6))
  norm = state_lib.global_norm({'a': jnp.array([3.0]),
                                'b': [jnp.array([[4.0]])]})
  assert float(norm) == pytest.approx(5.0)
