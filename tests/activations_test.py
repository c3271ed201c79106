"""Tests for the generators' nonlinearities."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import activations


def test_snake_is_its_formula_with_alpha_per_channel():
  x = jax.random.normal(jax.random.key(0), (2, 7, 3))
  snake = activations.Snake()
  params = snake.init(jax.random.key(1), x)
  assert params["params"]["alpha"].shape == (3,)
  alpha = jnp.array([0.5, 1.0, 3.0])
  out = snake.apply({"params": {"alpha": alpha}}, x)
  np.testing.assert_allclose(
      out, x + np.sin(np.asarray(alpha) * x) ** 2 / np.asarray(alpha),
      rtol=1e-5, atol=1e-6)


def test_activation_by_name_and_unknown_names_refused():
  assert activations.activation("relu", "a") is nn.relu
  snake = activations.activation("snake", "upconv_0")
  assert isinstance(snake, activations.Snake) and snake.name == "snake_upconv_0"
  activations.check_activation("snake", "activation")
  with pytest.raises(ValueError, match=r"my_model: activation must be one of "
                     r"\('relu', 'snake'\), got 'tanh'"):
    activations.check_activation("tanh", "my_model: activation")
