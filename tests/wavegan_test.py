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


def _nn_generator_by_hand(params, z, mode):
  """The relu / nn generator written with numpy pads and lax convolutions."""
  p = params["params"]
  length, channels, layers = wavegan.generator_layout(8192, 2, 1)
  x = z @ p["z_project"]["kernel"] + p["z_project"]["bias"]
  x = jax.nn.relu(x.reshape(z.shape[0], length, channels))
  for i, (_, stride) in enumerate(layers):
    layer = p[f"upconv_{i}"]
    x = np.pad(np.repeat(np.asarray(x), stride, axis=1),
               ((0, 0), (12, 12), (0, 0)), mode=mode)
    x = jax.lax.conv_general_dilated(
        x, layer["kernel"], (1,), "VALID",
        dimension_numbers=("NWC", "WIO", "NWC")) + layer["bias"]
    x = jax.nn.relu(x) if i < len(layers) - 1 else x
  return np.tanh(x)


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_edge_padding_equals_padding_each_layer_by_hand(mode):
  z = jax.random.uniform(KEY, (2, 100), minval=-1.0, maxval=1.0)
  padded = wavegan.WaveGANGenerator(dim=2, slice_len=8192, upsample="nn",
                                    edge_padding=mode)
  params = padded.init(KEY, z)
  audio = np.asarray(jax.jit(padded.apply)(params, z))
  assert audio.shape == (2, 8192, 1)
  np.testing.assert_allclose(audio, _nn_generator_by_hand(params, z, mode),
                             atol=2e-5)
  # Same parameters as SAME's zeros, and a different output at the ends.
  zeros = wavegan.WaveGANGenerator(dim=2, slice_len=8192, upsample="nn")
  assert (jax.tree_util.tree_map(np.shape, params)
          == jax.tree_util.tree_map(np.shape, zeros.init(KEY, z)))
  by_zeros = np.asarray(jax.jit(zeros.apply)(params, z))
  assert np.abs(by_zeros - audio)[:, -8:].max() > 1e-4
  np.testing.assert_allclose(by_zeros, _nn_generator_by_hand(
      params, z, "constant"), atol=2e-5)


def test_snake_generator_adds_an_alpha_per_hidden_layer_and_trains_it():
  z = jax.random.uniform(KEY, (2, 100), minval=-1.0, maxval=1.0)
  relu = wavegan.WaveGANGenerator(dim=2, slice_len=8192)
  snake = wavegan.WaveGANGenerator(dim=2, slice_len=8192, activation="snake")
  snake_params = snake.init(KEY, z)
  alphas = {k: v["alpha"].shape for k, v in snake_params["params"].items()
            if k.startswith("snake_")}
  # After the dense layer ([8, 16d]) and after each hidden upconv.
  assert alphas == {"snake_z_project": (32,), "snake_upconv_0": (16,),
                    "snake_upconv_1": (8,), "snake_upconv_2": (4,),
                    "snake_upconv_3": (2,)}
  shared = {k: v for k, v in snake_params["params"].items()
            if not k.startswith("snake_")}
  assert jax.tree.map(jnp.shape, shared) == jax.tree.map(
      jnp.shape, relu.init(KEY, z)["params"])
  audio = np.asarray(jax.jit(snake.apply)(snake_params, z))
  assert audio.shape == (2, 8192, 1) and np.all(np.abs(audio) <= 1.0)
  assert np.max(np.abs(audio - relu.apply({"params": shared}, z))) > 1e-3
  reference = wavegan.WaveGANGenerator(dim=2, slice_len=8192,
                                       activation="snake",
                                       conv_impl="reference")
  np.testing.assert_allclose(audio, reference.apply(snake_params, z),
                             atol=1e-6)
  grads = jax.grad(lambda p: jnp.mean(snake.apply(p, z) ** 2))(snake_params)
  for name in alphas:
    assert np.abs(np.asarray(grads["params"][name]["alpha"])).sum() > 0


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


def _dc_block_reference(x, length):
  """Twice a centred, edge-padded moving average, subtracted (numpy)."""
  half = length // 2
  def smooth(v):
    padded = np.pad(v, ((0, 0), (half, half), (0, 0)), mode="edge")
    kernel = np.ones(length) / length
    return np.stack([np.stack([np.convolve(p[:, c], kernel, mode="valid")
                               for c in range(v.shape[2])], -1)
                     for p in padded])
  return x - smooth(smooth(x))


def test_dc_block_is_a_high_pass_that_removes_offsets_and_keeps_speech():
  seconds = np.arange(8192) / 8000.0
  def gain(hz, length=201):
    x = np.sin(2 * np.pi * hz * seconds)[None, :, None].astype(np.float32)
    y = np.asarray(wavegan.dc_block_filter(jnp.asarray(x), length))
    middle = slice(1000, 7000)  # Away from the edge padding.
    return np.sqrt(np.mean(y[0, middle] ** 2) / np.mean(x[0, middle] ** 2))
  # 1 - sinc(f L / sample_rate)^2: 40 Hz is the average's first null.
  assert gain(5) < 0.06 and gain(2) < 0.01
  for hz in (80, 100, 200, 1000, 3000):
    assert abs(gain(hz) - 1.0) < 0.02
  offset = np.full((2, 8192, 1), 0.3, np.float32)
  np.testing.assert_allclose(
      wavegan.dc_block_filter(jnp.asarray(offset), 201), 0.0, atol=1e-6)


def test_dc_block_len_filters_the_generator_output_last():
  z = jax.random.uniform(KEY, (3, 100), minval=-1.0, maxval=1.0)
  plain = wavegan.WaveGANGenerator(dim=2, slice_len=8192, num_channels=2,
                                   upsample="nn", post_proc_filter_len=8)
  blocked = plain.clone(dc_block_len=31)
  params = plain.init(KEY, z)
  # Same parameters: the option adds none.
  assert (jax.tree.structure(params)
          == jax.tree.structure(blocked.init(KEY, z)))
  # A bias on the last layer shifts the plain output: give it one so there
  # is an offset to remove.
  params = flax.core.unfreeze(params)
  params["params"]["upconv_4"]["bias"] += 0.5
  reference = np.asarray(plain.apply(params, z), np.float64)
  assert np.abs(reference.mean(axis=1)).min() > 0.05
  out = np.asarray(blocked.apply(params, z), np.float64)
  np.testing.assert_allclose(out, _dc_block_reference(reference, 31),
                             atol=1e-5)
  assert np.abs(out.mean(axis=1)).max() < 1e-3
  # What training's critic scores: the output before the post-filter.
  np.testing.assert_array_equal(blocked.apply(params, z, post_filter=False),
                                plain.apply(params, z))
  for length in (2, 1, -3):
    with pytest.raises(ValueError, match="dc_block_len must be 0"):
      plain.clone(dc_block_len=length).init(KEY, z)


def test_end_fade_len_fades_the_last_samples_after_the_high_pass():
  z = jax.random.uniform(KEY, (2, 100), minval=-1.0, maxval=1.0)
  plain = wavegan.WaveGANGenerator(dim=2, slice_len=8192, upsample="nn",
                                   dc_block_len=31)
  faded = plain.clone(end_fade_len=64)
  params = plain.init(KEY, z)
  reference = np.asarray(plain.apply(params, z), np.float64)
  out = np.asarray(faded.apply(params, z), np.float64)
  # Untouched before the fade; inside it, the half-Hann gain
  # 0.5 + 0.5 cos(pi k / 64), k = 1..64, ending at exactly zero.
  np.testing.assert_array_equal(out[:, :-64], reference[:, :-64])
  gain = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, 65) / 64)
  np.testing.assert_allclose(out[:, -64:, 0], reference[:, -64:, 0] * gain,
                             atol=1e-6)
  assert np.all(out[:, -1] == 0.0)
  assert np.all(np.diff(gain) < 0)
  # Training's critic still scores the unfiltered output.
  np.testing.assert_array_equal(
      faded.apply(params, z, post_filter=False),
      plain.apply(params, z, post_filter=False))
  for length in (-1, 8193):
    with pytest.raises(ValueError, match="end_fade_len must be in"):
      plain.clone(end_fade_len=length).init(KEY, z)


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
  with pytest.raises(ValueError, match="activation must be one of"):
    wavegan.WaveGANGenerator(activation="gelu").init(KEY, jnp.zeros((1, 100)))
  with pytest.raises(ValueError, match="edge_padding must be one of"):
    wavegan.WaveGANGenerator(upsample="nn", edge_padding="wrap").init(
        KEY, jnp.zeros((1, 100)))
  with pytest.raises(ValueError, match="edge_padding='reflect' needs"):
    wavegan.WaveGANGenerator(edge_padding="reflect").init(
        KEY, jnp.zeros((1, 100)))
  with pytest.raises(ValueError, match=r"x must be \[batch, 8192, channels\]"):
    wavegan.WaveGANDiscriminator(slice_len=8192).init(KEY,
                                                      jnp.zeros((1, 100, 1)))
  with pytest.raises(ValueError, match=r"condition must be \[1, Dc\]"):
    wavegan.WaveGANDiscriminator(dim=1, slice_len=8192).init(
        KEY, jnp.zeros((1, 8192, 1)), None, jnp.zeros((2, 3)))


def _minibatch_stddev_loop(h, group_size):
  """minibatch_stddev written example by example, for comparison."""
  h = np.asarray(h, np.float64)
  batch = h.shape[0]
  size = min(group_size, batch)
  per_group = batch // size
  out = []
  for b in range(batch):
    members = h[[b % per_group + k * per_group for k in range(size)]]
    spread = np.sqrt(members.var(axis=0) + 1e-8).mean()
    out.append(np.concatenate(
        [h[b], np.full(h.shape[1:2] + (1,), spread)], axis=-1))
  return np.stack(out)


@pytest.mark.parametrize("batch,group", [(8, 4), (8, 2), (8, 8), (4, 16),
                                         (1, 4)])
def test_minibatch_stddev_equals_the_per_example_formulation(batch, group):
  h = jax.random.normal(KEY, (batch, 5, 3)) * jnp.arange(1, 4)
  got = wavegan.minibatch_stddev(h, group)
  assert got.shape == (batch, 5, 4)
  np.testing.assert_allclose(got, _minibatch_stddev_loop(h, group),
                             rtol=1e-5, atol=1e-6)


def test_minibatch_std_lets_a_score_depend_on_its_group_only():
  x = jax.random.normal(KEY, (4, 8192, 1))
  changed = x.at[1].multiply(3.0)
  for group, moved in [(0, [1]), (2, [1, 3]), (4, [0, 1, 2, 3])]:
    critic = wavegan.WaveGANDiscriminator(dim=2, slice_len=8192,
                                          minibatch_std_group=group)
    params = critic.init(KEY, x[:1])  # Init on one example, as the trainer.
    delta = np.abs(np.asarray(critic.apply(params, changed)
                              - critic.apply(params, x)))
    assert sorted(np.flatnonzero(delta > 1e-6).tolist()) == moved, group


def test_minibatch_std_adds_one_channel_to_the_output_layer():
  x = jnp.zeros((1, 8192, 1))
  plain = wavegan.WaveGANDiscriminator(dim=2, slice_len=8192).init(KEY, x)
  with_std = wavegan.WaveGANDiscriminator(
      dim=2, slice_len=8192, minibatch_std_group=4).init(KEY, x)
  length, width = 8, 32  # 8192 / 4**5 positions of 16 * dim channels.
  assert plain["params"]["output"]["kernel"].shape == (length * width, 1)
  assert with_std["params"]["output"]["kernel"].shape == (
      length * (width + 1), 1)


def test_bad_minibatch_std_group_raises_clear_errors():
  x = jnp.zeros((6, 8192, 1))
  for group in (-1, True, 2.0):
    with pytest.raises(ValueError, match=r"minibatch_std_group must be an "
                       rf"int >= 0, got {group!r}"):
      wavegan.WaveGANDiscriminator(dim=1, slice_len=8192,
                                   minibatch_std_group=group).init(KEY, x)
  with pytest.raises(ValueError, match=r"batch 6 must split into groups of 4"):
    wavegan.WaveGANDiscriminator(dim=1, slice_len=8192,
                                 minibatch_std_group=4).init(KEY, x)
