"""Tests for the models' `compute_dtype` (bfloat16 for GPU / TPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import generator as generator_lib
from wavegan_jax.models import wavegan

KEY = jax.random.key(0)
# bfloat16 keeps 8 mantissa bits (relative rounding 2 ** -9 = 0.002 per
# operation); a few layers of products stay within a few percent.
BF16_TOLERANCE = 0.05


def _relative_error(actual, expected):
  actual, expected = np.asarray(actual), np.asarray(expected)
  return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def _cosine(actual, expected):
  actual = np.asarray(actual).ravel()
  expected = np.asarray(expected).ravel()
  return float(actual @ expected / (np.linalg.norm(actual)
                                    * np.linalg.norm(expected)))


def _float32_leaves(tree):
  return all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(tree))


def test_wavegan_bfloat16_close_to_float32():
  z = jax.random.uniform(KEY, (1, 100), minval=-1.0, maxval=1.0)
  kwargs = dict(dim=2, slice_len=8192, conv_impl="fast")
  generator = wavegan.WaveGANGenerator(**kwargs)
  generator_bf16 = wavegan.WaveGANGenerator(compute_dtype="bfloat16",
                                            **kwargs)
  g_params = generator.init(KEY, z)
  assert _float32_leaves(generator_bf16.init(KEY, z))
  audio = jax.jit(generator.apply)(g_params, z)
  audio_bf16 = jax.jit(generator_bf16.apply)(g_params, z)
  assert audio_bf16.dtype == jnp.float32 and audio_bf16.shape == audio.shape
  assert 0 < _relative_error(audio_bf16, audio) < BF16_TOLERANCE

  critic = wavegan.WaveGANDiscriminator(**kwargs)
  critic_bf16 = wavegan.WaveGANDiscriminator(compute_dtype="bfloat16",
                                             **kwargs)
  d_params = critic.init(KEY, audio)
  assert _float32_leaves(critic_bf16.init(KEY, audio))

  def loss_and_grads(model):
    def loss(params):
      logits, features = model.apply(params, audio, rng=KEY,
                                     return_features=True)
      assert logits.dtype == features[-1].dtype == jnp.float32
      return jnp.mean(logits) + jnp.mean(features[-1])
    return jax.jit(jax.value_and_grad(loss))(d_params)
  loss, grads = loss_and_grads(critic)
  loss_bf16, grads_bf16 = loss_and_grads(critic_bf16)
  assert _float32_leaves(grads_bf16)
  assert abs(float(loss_bf16 - loss)) < BF16_TOLERANCE * abs(float(loss))
  # A kernel's gradient sums thousands of bfloat16 products, so its
  # elements drift by tens of percent (0.25 in norm measured for
  # downconv_0); its direction, which the optimizer follows, holds.
  for layer in ("downconv_0", "downconv_4", "output"):
    assert _cosine(grads_bf16["params"][layer]["kernel"],
                   grads["params"][layer]["kernel"]) > 0.9


def _av_inputs():
  keys = jax.random.split(KEY, 3)
  return (jax.random.normal(keys[0], (2, 32, 8)),
          jax.random.normal(keys[1], (2, 5, 8)),
          jax.random.normal(keys[2], (2, 8)))


def test_av_conv_decoder_bfloat16_close_to_float32():
  kwargs = dict(num_samples=2048, num_frames=32, lstm_features=8,
                decoder_channels=16, kernel_len=9)
  model = generator_lib.AVGenerator(**kwargs)
  model_bf16 = generator_lib.AVGenerator(compute_dtype="bfloat16", **kwargs)
  inputs = _av_inputs()
  params = model.init(KEY, *inputs)
  assert _float32_leaves(model_bf16.init(KEY, *inputs))
  audio = model.apply(params, *inputs)
  audio_bf16 = model_bf16.apply(params, *inputs)
  assert audio_bf16.dtype == jnp.float32 and audio_bf16.shape == (2, 2048)
  assert 0 < _relative_error(audio_bf16, audio) < BF16_TOLERANCE


def test_bad_compute_dtype_raises_clear_errors():
  z = jnp.zeros((1, 100))
  with pytest.raises(ValueError, match="compute_dtype must be one of "
                     r"\('float32', 'bfloat16'\), got 'float16'"):
    wavegan.WaveGANGenerator(dim=2, slice_len=8192,
                             compute_dtype="float16").init(KEY, z)
  with pytest.raises(ValueError, match="implemented for decoder='conv' only"):
    generator_lib.AVGenerator(
        num_samples=2048, num_frames=32, lstm_features=8, decoder="lstm",
        compute_dtype="bfloat16").init(KEY, *_av_inputs())
