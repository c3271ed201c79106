"""Tests for wavegan_jax.models.generator."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import generator

TINY = dict(lstm_features=8, num_heads=2, decoder_channels=16, kernel_len=5)


def _inputs(batch=2, frames=4, acoustic_frames=6, seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(keys[0], (batch, frames, 6)),
          jax.random.normal(keys[1], (batch, acoustic_frames, 5)),
          jax.random.normal(keys[2], (batch, 3)))


@pytest.mark.parametrize("fusion", ["lstm", "lstm_transformer"])
@pytest.mark.parametrize("decoder", ["conv", "lstm", "harmonic"])
@pytest.mark.parametrize("num_samples,num_frames",
                         [(256, 4), (1024, 4), (64, 16), (16, 16)])
def test_output_length_equals_num_samples(fusion, decoder, num_samples,
                                          num_frames):
  model = generator.AVGenerator(num_samples=num_samples,
                                num_frames=num_frames, fusion=fusion,
                                decoder=decoder, **TINY)
  inputs = _inputs(frames=num_frames)
  params = jax.eval_shape(model.init, jax.random.key(0), *inputs)
  out = jax.eval_shape(model.apply, params, *inputs)
  assert out.shape == (2, num_samples) and out.dtype == jnp.float32


def test_num_upsample_layers():
  assert generator.num_upsample_layers(8192, 32, 4) == 4
  assert generator.num_upsample_layers(16384, 1, 4) == 7
  assert generator.num_upsample_layers(32, 32, 4) == 0
  assert generator.num_upsample_layers(200, 25, 2) == 3


def test_impossible_sizes_raise_clear_errors():
  inputs = _inputs()
  with pytest.raises(ValueError, match=(
      r"num_samples / num_frames = 384 / 4 = 96 is not a power of the "
      r"upsampling stride 4")):
    model = generator.AVGenerator(num_samples=384, num_frames=4, **TINY)
    jax.eval_shape(model.init, jax.random.key(0), *inputs)
  with pytest.raises(
      ValueError, match="num_samples=8192 is not a multiple of num_frames=30"):
    model = generator.AVGenerator(num_samples=8192, num_frames=30, **TINY)
    jax.eval_shape(model.init, jax.random.key(0), *_inputs(frames=30))
  with pytest.raises(ValueError, match=r"visual_context must be \[batch, "
                     r"num_frames=4, features\], got shape \(2, 5, 6\)"):
    model = generator.AVGenerator(num_samples=256, num_frames=4, **TINY)
    jax.eval_shape(model.init, jax.random.key(0), *_inputs(frames=5))
  with pytest.raises(ValueError, match="decoder must be one of"):
    model = generator.AVGenerator(num_samples=256, num_frames=4,
                                  decoder="wavenet", **TINY)
    jax.eval_shape(model.init, jax.random.key(0), *inputs)


def test_values_noise_and_reference_summary():
  model = generator.AVGenerator(num_samples=256, num_frames=4,
                                noise_features=3, **TINY)
  visual, acoustic, style = _inputs()
  z = jnp.ones((2, 3))
  params = jax.jit(model.init)(jax.random.key(0), visual, acoustic, style, z)
  apply = jax.jit(model.apply)
  out = np.asarray(apply(params, visual, acoustic, style, z))
  assert np.abs(out).max() < 1 and np.abs(out).max() > 0
  # The reference enters through its time average only: reversing its
  # frames changes nothing, and any reference length is accepted.
  reversed_out = apply(params, visual, acoustic[:, ::-1], style, z)
  np.testing.assert_allclose(reversed_out, out, rtol=1e-5, atol=1e-6)
  # Different noise, different audio; drawn from the 'noise' rng if absent.
  assert np.abs(apply(params, visual, acoustic, style, -z) - out).max() > 0
  sampled = model.apply(params, visual, acoustic, style,
                        rngs={"noise": jax.random.key(3)})
  assert sampled.shape == (2, 256)
  with pytest.raises(ValueError, match=r"z must be \[batch, noise_features\]"):
    apply(params, visual, acoustic, style, jnp.ones((2, 4)))


@pytest.mark.parametrize("decoder", ["conv", "lstm", "harmonic"])
def test_gradients_reach_every_parameter(decoder):
  model = generator.AVGenerator(num_samples=256, num_frames=4,
                                fusion="lstm_transformer", decoder=decoder,
                                **TINY)
  inputs = _inputs()
  target = jax.random.normal(jax.random.key(5), (2, 256))
  params = jax.jit(model.init)(jax.random.key(0), *inputs)
  grads = jax.jit(jax.grad(
      lambda p: jnp.sum(model.apply(p, *inputs) * target)))(params)
  for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
    assert np.abs(np.asarray(leaf)).max() > 0, path


def test_default_parameter_counts_match_docstring():
  shapes = (jax.ShapeDtypeStruct((1, 32, 64), jnp.float32),
            jax.ShapeDtypeStruct((1, 32, 64), jnp.float32),
            jax.ShapeDtypeStruct((1, 64), jnp.float32))
  counts = []
  for options in ({}, {"fusion": "lstm_transformer"}, {"decoder": "lstm"}):
    model = generator.AVGenerator(**options)
    counts.append(generator.count_params(
        jax.eval_shape(model.init, jax.random.key(0), *shapes)))
  assert counts == [1_470_721, 2_261_253, 558_848]


def test_snake_decoder_has_an_alpha_per_activation_and_trains_it():
  model = generator.AVGenerator(num_samples=256, num_frames=4,
                                decoder_activation="snake", **TINY)
  inputs = _inputs()
  params = jax.jit(model.init)(jax.random.key(0), *inputs)
  decoder = params["params"]["decoder"]
  # The input layer's and every upsampling layer's but the last.
  assert sorted(k for k in decoder if k.startswith("snake")) == [
      "snake_0", "snake_1", "snake_input"]
  relu = generator.AVGenerator(num_samples=256, num_frames=4, **TINY)
  relu_params = jax.jit(relu.init)(jax.random.key(0), *inputs)
  assert (generator.count_params(params) - generator.count_params(
      relu_params)) == 16 + 8 + 4  # One alpha per channel.
  target = jax.random.normal(jax.random.key(5), (2, 256))
  grads = jax.grad(lambda p: jnp.sum(model.apply(p, *inputs) * target))(
      params)
  assert np.abs(np.asarray(grads["params"]["decoder"]["snake_1"]["alpha"])
                ).max() > 0


def test_snake_needs_the_conv_decoder():
  for kwargs, message in (
      (dict(decoder_activation="tanh"), "decoder_activation must be one of"),
      (dict(decoder_activation="snake", decoder="lstm"),
       "implemented for decoder='conv' only")):
    model = generator.AVGenerator(num_samples=256, num_frames=4,
                                  **{**TINY, **kwargs})
    with pytest.raises(ValueError, match=message):
      jax.eval_shape(model.init, jax.random.key(0), *_inputs())


@pytest.mark.parametrize("reference_attention", [False, True])
def test_reference_attention_hears_more_than_the_references_average(
    reference_attention):
  model = generator.AVGenerator(num_samples=256, num_frames=4,
                                fusion="lstm_transformer",
                                reference_attention=reference_attention,
                                **TINY)
  visual, acoustic, style = _inputs()
  params = model.init(jax.random.key(0), visual, acoustic, style)
  assert ("cross_attention" in params["params"]["fusion"]["transformer"]) == (
      reference_attention)
  # Same time average, different sequence (varying across features too: a
  # shift of a whole frame would vanish in the context's LayerNorm).
  alternating = jnp.where(jnp.arange(6) % 2 == 0, 1.0, -1.0)[None, :, None]
  reshaped = acoustic + 2.0 * alternating * jnp.arange(5.0)
  np.testing.assert_allclose(jnp.mean(reshaped, 1), jnp.mean(acoustic, 1),
                             atol=1e-6)
  difference = np.abs(np.asarray(
      model.apply(params, visual, acoustic, style)
      - model.apply(params, visual, reshaped, style))).max()
  if reference_attention:
    assert difference > 1e-4
  else:
    assert difference < 1e-5


def test_transformer_zero_init_starts_the_fusion_as_its_lstm():
  inputs = _inputs()
  plain = generator.AVGenerator(num_samples=256, num_frames=4, **TINY)
  zero = generator.AVGenerator(num_samples=256, num_frames=4,
                               fusion="lstm_transformer",
                               transformer_zero_init=True,
                               reference_attention=True, **TINY)
  params = zero.init(jax.random.key(0), *inputs)
  fusion = params["params"]["fusion"]
  lstm_only = {"params": {"fusion": {"lstm": fusion["lstm"]}}}
  lstm_out = plain.apply(lstm_only, *inputs, method=plain.fuse)
  # The block ends with a LayerNorm (at its initial scale 1, offset 0).
  expected = nn.LayerNorm().apply(
      {"params": fusion["transformer_output_norm"]}, lstm_out)
  np.testing.assert_allclose(zero.apply(params, *inputs, method=zero.fuse),
                             expected, rtol=1e-6, atol=1e-6)


def test_transformer_options_need_the_transformer_fusion():
  model = generator.AVGenerator(num_samples=256, num_frames=4,
                                reference_attention=True, **TINY)
  with pytest.raises(ValueError, match="need fusion='lstm_transformer'"):
    model.init(jax.random.key(0), *_inputs())
