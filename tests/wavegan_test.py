"""Tests for the WaveGAN models: shapes, sizes, phase shuffle, options."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import conv
from wavegan_jax.models import wavegan

KEY = jax.random.key(0)


def _abstract_params(module, *inputs):
  return jax.eval_shape(module.init, KEY, *inputs)


def test_parameter_counts_match_the_paper_model():
  generator = wavegan.WaveGANGenerator(dim=64, slice_len=16384)
  discriminator = wavegan.WaveGANDiscriminator(dim=64, slice_len=16384)
  g_params = _abstract_params(generator, jnp.zeros((1, 100)))
  d_params = _abstract_params(discriminator, jnp.zeros((1, 16384, 1)))
  assert wavegan.count_params(g_params) == 19_065_345
  assert wavegan.count_params(d_params) == 17_427_969


@pytest.mark.parametrize("slice_len", wavegan.SLICE_LENGTHS)
@pytest.mark.parametrize("upsample", wavegan.UPSAMPLE_MODES)
def test_generator_output_shape(slice_len, upsample):
  generator = wavegan.WaveGANGenerator(
      dim=4, slice_len=slice_len, num_channels=2, upsample=upsample,
      use_batchnorm=True, post_proc_filter_len=512)
  z = jnp.zeros((3, 100))
  variables = _abstract_params(generator, z)
  out = jax.eval_shape(generator.apply, variables, z)
  assert out.shape == (3, slice_len, 2)
  assert "batch_stats" in variables
  assert variables["params"]["pp_filter"]["kernel"].shape == (512, 2, 2)


def test_generator_layouts_follow_the_official_code():
  assert wavegan.generator_layout(32768, 64, 1) == (
      16, 2048, [(1024, 4), (512, 4), (256, 4), (128, 4), (64, 4), (1, 2)])
  assert wavegan.generator_layout(8192, 64, 1)[:2] == (8, 1024)
  assert wavegan.discriminator_layout(65536, 64)[-1] == (2048, 4)


@pytest.mark.parametrize("slice_len", wavegan.SLICE_LENGTHS)
def test_discriminator_output_and_feature_shapes(slice_len):
  discriminator = wavegan.WaveGANDiscriminator(dim=2, slice_len=slice_len,
                                               use_batchnorm=True)
  x = jnp.zeros((3, slice_len, 1))
  variables = _abstract_params(discriminator, x)
  (logits, features), _ = jax.eval_shape(
      lambda v, x: discriminator.apply(v, x, KEY, return_features=True,
                                       mutable=["batch_stats"]), variables, x)
  assert logits.shape == (3,)
  widths = [2, 4, 8, 16, 32] + ([64] if slice_len > 16384 else [])
  last_length = 8 if slice_len == 8192 else 16
  assert [f.shape[-1] for f in features] == widths
  assert features[-1].shape == (3, last_length, widths[-1])


def test_generator_runs_and_fast_equals_reference():
  z = jax.random.uniform(KEY, (2, 100), minval=-1.0, maxval=1.0)
  fast = wavegan.WaveGANGenerator(dim=2, slice_len=8192)
  reference = wavegan.WaveGANGenerator(dim=2, slice_len=8192,
                                       conv_impl="reference")
  params = fast.init(KEY, z)
  audio = np.asarray(jax.jit(fast.apply)(params, z))
  assert audio.shape == (2, 8192, 1)
  assert np.all(np.abs(audio) <= 1.0) and np.std(audio) > 0
  np.testing.assert_allclose(audio, jax.jit(reference.apply)(params, z),
                             atol=1e-6)


def test_nn_upsample_has_the_same_parameter_shapes():
  z = jnp.zeros((1, 100))
  shapes = [jax.tree_util.tree_map(
      lambda a: a.shape, _abstract_params(
          wavegan.WaveGANGenerator(dim=2, upsample=mode), z))
            for mode in wavegan.UPSAMPLE_MODES]
  assert shapes[0] == shapes[1]


def _numpy_shift(x, k):
  """x shifted right by k along axis 1 with reflect padding."""
  rad = abs(k)
  padded = np.pad(x, ((0, 0), (rad, rad), (0, 0)), mode="reflect")
  return padded[:, rad - k:rad - k + x.shape[1]]


def test_phase_shuffle_is_one_reflect_padded_shift_per_batch():
  x = np.arange(2 * 10 * 3, dtype=np.float32).reshape(2, 10, 3)
  rad = 2
  seen = set()
  for seed in range(40):
    out = np.asarray(wavegan.phase_shuffle(x, jax.random.key(seed), rad))
    matches = [k for k in range(-rad, rad + 1)
               if np.array_equal(out, _numpy_shift(x, k))]
    assert len(matches) == 1
    seen.add(matches[0])
  assert seen == set(range(-rad, rad + 1))


def test_phase_shuffle_hand_computed_shift():
  x = np.array([0., 1., 2., 3., 4.]).reshape(1, 5, 1)
  np.testing.assert_array_equal(_numpy_shift(x, 2)[0, :, 0], [2, 1, 0, 1, 2])
  np.testing.assert_array_equal(_numpy_shift(x, -1)[0, :, 0], [1, 2, 3, 4, 3])
  rng = jax.random.key(3)
  k = int(jax.random.randint(rng, (), -2, 3))
  np.testing.assert_array_equal(wavegan.phase_shuffle(x, rng, 2),
                                _numpy_shift(x, k))


def test_phase_shuffle_radius_zero_is_identity_and_short_input_fails():
  x = jnp.arange(12.0).reshape(1, 4, 3)
  np.testing.assert_array_equal(wavegan.phase_shuffle(x, KEY, 0), x)
  with pytest.raises(ValueError, match="length 2 must exceed the radius 2"):
    wavegan.phase_shuffle(jnp.zeros((1, 2, 1)), KEY, 2)


def test_post_processing_filter_is_a_same_convolution_after_tanh():
  z = jax.random.uniform(KEY, (2, 100), minval=-1.0, maxval=1.0)
  with_filter = wavegan.WaveGANGenerator(dim=2, slice_len=8192,
                                         post_proc_filter_len=16)
  plain = wavegan.WaveGANGenerator(dim=2, slice_len=8192)
  params = flax.core.unfreeze(with_filter.init(KEY, z))
  pp_params = params["params"].pop("pp_filter")
  assert set(pp_params) == {"kernel"}  # no bias, as the official filter
  expected = conv.conv1d_reference(plain.apply(params, z),
                                   pp_params["kernel"], 1, "SAME")
  params["params"]["pp_filter"] = pp_params
  np.testing.assert_allclose(with_filter.apply(params, z), expected,
                             atol=1e-6)


def _conditioned_logits(condition):
  discriminator = wavegan.WaveGANDiscriminator(dim=2, slice_len=8192)
  x = jax.random.normal(KEY, (2, 8192, 1))
  apply = jax.jit(discriminator.apply, static_argnames="return_features")
  params = flax.core.unfreeze(discriminator.init(KEY, x, None, condition))
  logits = apply(params, x, None, condition)
  projection = params["params"].pop("condition_projection")["kernel"]
  plain, features = apply(params, x, return_features=True)
  return logits, plain, features[-1], projection


def test_vector_condition_adds_the_projection_term():
  condition = jax.random.normal(jax.random.key(1), (2, 5))
  logits, plain, hidden, projection = _conditioned_logits(condition)
  assert projection.shape == (5, 32)
  expected = plain + jnp.einsum("blc,bd,dc->b", hidden, condition, projection)
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_sequence_condition_is_projected_per_position():
  # Last layer length is 8 at 8192 samples: a length-8 sequence is used as is.
  condition = jax.random.normal(jax.random.key(2), (2, 8, 5))
  logits, plain, hidden, projection = _conditioned_logits(condition)
  expected = plain + jnp.einsum("blc,bld,dc->b", hidden, condition, projection)
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
  # A constant sequence at another rate equals the vector condition.
  vector = condition[:, 0]
  sequence = jnp.repeat(vector[:, None], 32, axis=1)
  logits_seq = _conditioned_logits(sequence)[0]
  np.testing.assert_allclose(logits_seq, _conditioned_logits(vector)[0],
                             rtol=1e-5, atol=1e-5)


def test_discriminator_phase_shuffle_uses_rng_and_none_disables_it():
  discriminator = wavegan.WaveGANDiscriminator(dim=2, slice_len=8192)
  x = jax.random.normal(KEY, (2, 8192, 1))
  params = discriminator.init(KEY, x)
  without = discriminator.apply(params, x)
  no_shuffle = wavegan.WaveGANDiscriminator(dim=2, slice_len=8192,
                                            phaseshuffle_rad=0)
  np.testing.assert_array_equal(without, no_shuffle.apply(params, x, KEY))
  shuffled = [discriminator.apply(params, x, jax.random.key(s))
              for s in range(4)]
  assert max(float(jnp.max(jnp.abs(s - without))) for s in shuffled) > 1e-6


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(ValueError, match="slice_len must be one of"):
    wavegan.WaveGANGenerator(slice_len=4096).init(KEY, jnp.zeros((1, 100)))
  with pytest.raises(ValueError, match="upsample must be one of"):
    wavegan.WaveGANGenerator(upsample="linear").init(KEY, jnp.zeros((1, 100)))
  with pytest.raises(ValueError, match=r"x must be \[batch, 8192, channels\]"):
    wavegan.WaveGANDiscriminator(slice_len=8192).init(KEY,
                                                      jnp.zeros((1, 100, 1)))
  with pytest.raises(ValueError, match=r"condition must be \[1, Dc\]"):
    wavegan.WaveGANDiscriminator(dim=1, slice_len=8192).init(
        KEY, jnp.zeros((1, 8192, 1)), None, jnp.zeros((2, 3)))
