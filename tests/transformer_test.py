"""Tests for wavegan_jax.models.transformer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import transformer


def test_sinusoidal_hand_computed_values():
  encoding = transformer.sinusoidal_position_encoding(5, 4)
  assert encoding.shape == (5, 4) and encoding.dtype == np.float32
  # Position 0: sin 0 = 0, cos 0 = 1.
  np.testing.assert_allclose(encoding[0], [0.0, 1.0, 0.0, 1.0], atol=1e-7)
  # Position 1, i = 0: angle 1; i = 1: angle 1 / 10000^(2/4) = 0.01.
  np.testing.assert_allclose(
      encoding[1], [np.sin(1.0), np.cos(1.0), np.sin(0.01), np.cos(0.01)],
      rtol=1e-6)
  np.testing.assert_allclose(
      encoding[3], [np.sin(3.0), np.cos(3.0), np.sin(0.03), np.cos(0.03)],
      rtol=1e-6)
  # Odd width: the last column is the final sine.
  odd = transformer.sinusoidal_position_encoding(3, 5)
  assert odd.shape == (3, 5)
  np.testing.assert_allclose(odd[2, 4], np.sin(2.0 / 10000.0 ** (4 / 5)),
                             rtol=1e-6)


def test_attention_equals_naive_per_head_reference():
  rng = np.random.default_rng(0)
  queries = jnp.asarray(rng.normal(size=(2, 5, 8)), jnp.float32)
  keys = jnp.asarray(rng.normal(size=(2, 7, 6)), jnp.float32)
  bias = jnp.asarray(rng.normal(size=(1, 2, 5, 7)), jnp.float32)
  mask = jnp.asarray(rng.random((2, 1, 1, 7)) > 0.3).at[:, :, :, 0].set(True)
  attention = transformer.MultiHeadAttention(num_heads=2)
  params = attention.init(jax.random.key(0), queries, keys)
  out = attention.apply(params, queries, keys, bias=bias, mask=mask)
  assert out.shape == (2, 5, 8)

  p = jax.tree.map(np.asarray, params["params"])
  expected = np.zeros((2, 5, 8))
  for b in range(2):
    for h in range(2):
      q = queries[b] @ p["query"]["kernel"][:, h] + p["query"]["bias"][h]
      k = keys[b] @ p["key"]["kernel"][:, h] + p["key"]["bias"][h]
      v = keys[b] @ p["value"]["kernel"][:, h] + p["value"]["bias"][h]
      logits = q @ k.T / np.sqrt(4) + bias[0, h]
      logits = np.where(mask[b, 0], logits, -np.inf)
      weights = np.exp(logits - logits.max(-1, keepdims=True))
      weights /= weights.sum(-1, keepdims=True)
      expected[b] += (weights @ v) @ p["out"]["kernel"][h]
    expected[b] += p["out"]["bias"]
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_attention_rejects_indivisible_width():
  attention = transformer.MultiHeadAttention(num_heads=3)
  with pytest.raises(ValueError, match="not divisible by num_heads=3"):
    attention.init(jax.random.key(0), jnp.zeros((1, 4, 8)))


def test_relative_bias_is_toeplitz_and_clipped():
  module = transformer.RelativePositionBias(num_heads=3, max_distance=2)
  params = module.init(jax.random.key(1), 6, 6)
  bias = np.asarray(module.apply(params, 6, 6))
  table = np.asarray(params["params"]["embedding"])
  assert bias.shape == (3, 6, 6)
  for i in range(6):
    for j in range(6):
      offset = np.clip(j - i, -2, 2)
      np.testing.assert_array_equal(bias[:, i, j], table[offset + 2])
      if i > 0 and j > 0:  # Constant along diagonals.
        np.testing.assert_array_equal(bias[:, i, j], bias[:, i - 1, j - 1])


@pytest.mark.parametrize("position", ["absolute", "relative", "none"])
def test_block_shapes(position):
  block = transformer.TransformerBlock(num_heads=2, mlp_dim=16,
                                       position=position, dropout=0.1)
  x = jnp.ones((3, 5, 8))
  params = block.init(jax.random.key(0), x)
  out = block.apply(params, x, train=True,
                    rngs={"dropout": jax.random.key(1)})
  assert out.shape == (3, 5, 8) and out.dtype == jnp.float32
  # Dropout is off at inference: two calls agree.
  np.testing.assert_array_equal(block.apply(params, x), block.apply(params, x))


def _shift_with_masked_prefix(position, shift=3):
  """Outputs for x and for [padding, x] with the padding keys masked."""
  block = transformer.TransformerBlock(num_heads=2, mlp_dim=16,
                                       position=position)
  x = jax.random.normal(jax.random.key(2), (2, 6, 8))
  padding = jax.random.normal(jax.random.key(3), (2, shift, 8))
  shifted = jnp.concatenate([padding, x], axis=1)
  params = block.init(jax.random.key(0), x)
  # Make the relative bias large so a positional dependence would show.
  if position == "relative":
    table = params["params"]["relative_bias"]["embedding"]
    params["params"]["relative_bias"]["embedding"] = 3.0 * jnp.sign(
        table) + table
  out = block.apply(params, x)
  key_mask = (jnp.arange(6 + shift) >= shift)[None, None, None, :]
  out_shifted = block.apply(params, shifted, mask=key_mask)
  return np.asarray(out), np.asarray(out_shifted[:, shift:])


def test_relative_block_is_shift_equivariant():
  out, out_shifted = _shift_with_masked_prefix("relative")
  np.testing.assert_allclose(out_shifted, out, rtol=1e-5, atol=1e-5)


def test_absolute_block_is_not_shift_equivariant():
  out, out_shifted = _shift_with_masked_prefix("absolute")
  assert np.abs(out_shifted - out).max() > 1e-2


def test_block_rejects_unknown_position():
  block = transformer.TransformerBlock(num_heads=2, mlp_dim=8,
                                       position="rotary")
  with pytest.raises(ValueError, match="position must be one of"):
    block.init(jax.random.key(0), jnp.zeros((1, 4, 8)))


def test_block_gradients_reach_every_parameter():
  block = transformer.TransformerBlock(num_heads=2, mlp_dim=16)
  x = jax.random.normal(jax.random.key(0), (2, 5, 8))
  params = block.init(jax.random.key(1), x)
  grads = jax.grad(lambda p: jnp.sum(block.apply(p, x) ** 2))(params)
  for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
    assert np.abs(np.asarray(leaf)).max() > 0, path


def test_zero_init_block_is_the_identity_until_trained():
  block = transformer.TransformerBlock(num_heads=2, mlp_dim=16,
                                       zero_init_residual=True)
  x = jax.random.normal(jax.random.key(0), (2, 5, 8))
  context = jax.random.normal(jax.random.key(1), (2, 7, 6))
  params = block.init(jax.random.key(2), x, context=context)
  np.testing.assert_array_equal(block.apply(params, x, context=context), x)
  # The output projections get gradients, so training can move it away.
  grads = jax.grad(lambda p: jnp.sum(
      block.apply(p, x, context=context) ** 2))(params)["params"]
  for name in ("attention", "cross_attention"):
    assert np.abs(np.asarray(grads[name]["out"]["kernel"])).max() > 0, name
  assert np.abs(np.asarray(grads["mlp_out"]["kernel"])).max() > 0


def test_cross_attention_reads_the_context_and_ignores_its_order():
  block = transformer.TransformerBlock(num_heads=2, mlp_dim=16)
  x = jax.random.normal(jax.random.key(0), (2, 5, 8))
  context = jax.random.normal(jax.random.key(1), (2, 7, 6))
  params = block.init(jax.random.key(2), x, context=context)
  assert params["params"]["cross_attention"]["key"]["kernel"].shape == (
      6, 2, 4)
  out = block.apply(params, x, context=context)
  # (An affine change of the context would vanish in its LayerNorm.)
  other = block.apply(params, x, context=context ** 2)
  assert np.abs(np.asarray(out - other)).max() > 1e-3
  # No position terms on the context: permuting it changes nothing.
  shuffled = block.apply(params, x, context=context[:, ::-1])
  np.testing.assert_allclose(shuffled, out, rtol=1e-5, atol=1e-5)
  # Without a context the block has no cross-attention parameters.
  assert "cross_attention" not in block.init(jax.random.key(2), x)["params"]


def test_block_rejects_a_context_of_another_batch():
  block = transformer.TransformerBlock(num_heads=2, mlp_dim=16)
  with pytest.raises(ValueError, match="context must be"):
    block.init(jax.random.key(0), jnp.zeros((2, 5, 8)),
               context=jnp.zeros((3, 7, 6)))
