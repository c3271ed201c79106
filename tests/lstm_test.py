"""models/lstm.py against flax's nn.RNN(nn.OptimizedLSTMCell) formulation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import lstm


class FlaxLSTM(nn.Module):
  """The reference: one flax cell per direction, run by nn.RNN."""
  features: int
  bidirectional: bool = False

  @nn.compact
  def __call__(self, inputs):
    outputs = nn.RNN(nn.OptimizedLSTMCell(self.features))(inputs)
    if not self.bidirectional:
      return outputs
    backward = nn.RNN(nn.OptimizedLSTMCell(self.features))(
        inputs, reverse=True, keep_order=True)
    return jnp.concatenate([outputs, backward], axis=-1)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_same_params_values_and_gradients_as_flax_cells(bidirectional):
  x = jax.random.normal(jax.random.key(0), (3, 9, 5))
  ours, reference = (lstm.LSTM(6, bidirectional),
                     FlaxLSTM(6, bidirectional))
  params = ours.init(jax.random.key(1), x)
  reference_params = reference.init(jax.random.key(1), x)
  # Same names, shapes and initial values: checkpoints load either way.
  assert (jax.tree.structure(params) ==
          jax.tree.structure(reference_params))
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference_params)):
    np.testing.assert_array_equal(a, b)
  # Trained-looking params: biases and kernels of every size.
  params = jax.tree.map(
      lambda p: p + 0.3 * jax.random.normal(jax.random.key(p.size), p.shape),
      params)
  out = ours.apply(params, x)
  expected = reference.apply(params, x)
  assert out.shape == (3, 9, 12 if bidirectional else 6)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)

  weights = jax.random.normal(jax.random.key(2), out.shape)

  def loss(module, p, inputs):
    return jnp.sum(module.apply(p, inputs) * weights)
  grads = jax.grad(loss, argnums=(1, 2))(ours, params, x)
  expected_grads = jax.grad(loss, argnums=(1, 2))(reference, params, x)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_stacked_layers_shapes_and_bidirectional_order():
  x = jax.random.normal(jax.random.key(0), (2, 7, 3))
  for bidirectional, width in ((False, 5), (True, 10)):
    layer = lstm.StackedLSTM(5, num_layers=2, bidirectional=bidirectional)
    params = layer.init(jax.random.key(1), x)
    out = layer.apply(params, x)
    assert out.shape == (2, 7, width) and out.dtype == jnp.float32
    assert sorted(params["params"]) == ["layer_0", "layer_1"]
  # The backward half at step 0 depends on later steps; the forward half not.
  layer = lstm.LSTM(4, bidirectional=True)
  params = layer.init(jax.random.key(1), x)
  changed = x.at[:, -1].add(1.0)
  delta = np.abs(layer.apply(params, changed) - layer.apply(params, x))
  assert delta[:, 0, :4].max() == 0 and delta[:, 0, 4:].max() > 0
  # And the forward half at the last step depends on step 0.
  changed = x.at[:, 0].add(1.0)
  delta = np.abs(layer.apply(params, changed) - layer.apply(params, x))
  assert delta[:, -1, :4].max() > 0 and delta[:, -1, 4:].max() == 0


def test_bad_input_shapes():
  x = jax.random.normal(jax.random.key(0), (2, 7, 3))
  layer = lstm.LSTM(4, bidirectional=True)
  with pytest.raises(ValueError, match=r"got shape \(2, 7\)"):
    layer.init(jax.random.key(0), x[..., 0])
  with pytest.raises(ValueError, match="num_layers must be >= 1, got 0"):
    lstm.StackedLSTM(4, num_layers=0).init(jax.random.key(0), x)


@pytest.mark.parametrize("directions", [1, 2])
def test_hand_written_backward_equals_autodiff_of_the_loop(directions):
  # The recurrence's VJP is written out (the kernel's gradient is one product
  # after the loop); autodiff of the same forward loop is the reference, to
  # first and second order.
  steps, batch, hidden = 11, 3, 5
  keys = jax.random.split(jax.random.key(0), directions + 2)
  projections = tuple(
      jax.random.normal(keys[d], (steps, batch, 4 * hidden))
      for d in range(directions))
  kernel = 0.5 * jax.random.normal(keys[-2],
                                   (directions, hidden, 4 * hidden))
  weights = jax.random.normal(keys[-1], (steps, directions, batch, hidden))

  def autodiff_loop(p, k):
    return lstm._scan_forward(p, k, keep_residuals=False)

  def loss(recurrence, p, k):
    return jnp.sum(jnp.sin(recurrence(p, k)) * weights)

  np.testing.assert_array_equal(lstm._recurrence(projections, kernel),
                                autodiff_loop(projections, kernel))
  grads = jax.grad(loss, argnums=(1, 2))(lstm._recurrence, projections,
                                         kernel)
  expected = jax.grad(loss, argnums=(1, 2))(autodiff_loop, projections,
                                            kernel)
  assert jax.tree.structure(grads) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

  def grad_norm(recurrence, k):
    g = jax.grad(loss, argnums=2)(recurrence, projections, k)
    return jnp.sum(g * g)
  second = jax.grad(grad_norm, argnums=1)(lstm._recurrence, kernel)
  expected_second = jax.grad(grad_norm, argnums=1)(autodiff_loop, kernel)
  np.testing.assert_allclose(second, expected_second, rtol=1e-4, atol=1e-5)
