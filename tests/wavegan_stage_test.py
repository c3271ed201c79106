"""The unconditional WaveGAN stage: batch arithmetic of every config variant."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from experiments import wavegan as wavegan_config
from tests.conftest import assert_trees_equal
from tests.conftest import tiny_specgan_config
from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax import losses
from wavegan_jax import spectral
from wavegan_jax.data import pipeline
from wavegan_jax.models import specgan
from wavegan_jax.training import gan
from wavegan_jax.training import state as state_lib
from wavegan_jax.training import wavegan_options
from wavegan_jax.training.stages import wavegan as wavegan_stage


def _abstract_batch(config):
  kwargs = config.data.builder_kwargs
  rows = config.train.batch_size * config.wavegan.adversarial.d_steps
  return {"audio": jax.ShapeDtypeStruct(
      (rows, kwargs.slice_len, kwargs.num_channels), jnp.float32)}


def _record_latent_batches(monkeypatch):
  """A list that gets the batch size of every sample_latents call."""
  latent_batches = []
  sample = inference.sample_latents

  def recording_sample(rng, batch_size, latent_dim):
    latent_batches.append(batch_size)
    return sample(rng, batch_size, latent_dim)

  monkeypatch.setattr(inference, "sample_latents", recording_sample)
  return latent_batches


@pytest.mark.parametrize("variant", ["default", "paper", "specgan", "tiny"])
def test_every_variant_traces_a_step(variant, monkeypatch):
  # Traced abstractly (no FLOPs): a step of the variant's real batch must
  # be well formed, with every update on train.batch_size examples.
  config = wavegan_config.get_config(None if variant == "default" else variant)
  latent_batches = _record_latent_batches(monkeypatch)
  # SpecGAN's moments would read the train split; their shapes suffice.
  monkeypatch.setattr(wavegan_stage, "spectrogram_moments",
                      lambda *args, **kwargs: (np.zeros(128, np.float32),
                                               np.ones(128, np.float32)))
  spec = wavegan_stage.make_spec(config)
  state = jax.eval_shape(spec.init_fn)
  del latent_batches[:]  # The preview's latents, drawn in make_spec.
  new_state, metrics = jax.eval_shape(spec.step_fn, state,
                                      _abstract_batch(config),
                                      jax.random.PRNGKey(0))
  d_steps = config.wavegan.adversarial.d_steps
  # d_steps critic updates' fakes, then the generator update's.
  assert latent_batches == [config.train.batch_size] * (d_steps + 1)
  assert jax.tree.map(lambda a: a.shape, new_state) == jax.tree.map(
      lambda a: a.shape, state)
  assert metrics["d_loss"].shape == ()


def test_step_reads_d_steps_batches(manual_dir, tmp_path):
  config = wavegan_config.get_config("tiny")
  spec = wavegan_stage.make_spec(config, manual_dir=str(manual_dir),
                                 data_dir=str(tmp_path / "tfds"))
  batch = next(spec.make_batches(0))
  d_steps = config.wavegan.adversarial.d_steps
  assert batch["audio"].shape == (config.train.batch_size * d_steps,
                                  config.data.builder_kwargs.slice_len, 1)
  state, metrics = jax.jit(spec.step_fn)(spec.init_fn(), batch,
                                         jax.random.PRNGKey(0))
  assert int(state["step"]) == 1
  assert np.isfinite(float(metrics["g_loss"]))


@pytest.mark.parametrize("d_steps", [0, -1])
def test_bad_d_steps_is_named(d_steps):
  config = wavegan_config.get_config("tiny").unlock()
  config.wavegan.adversarial.d_steps = d_steps
  with pytest.raises(errors.UserFacingError,
                     match=rf"d_steps must be a positive int, got {d_steps}"):
    wavegan_stage.make_spec(config)


def _random_audio_batch(config, seed):
  kwargs = config.data.builder_kwargs
  rows = config.train.batch_size * config.wavegan.adversarial.d_steps
  return {"audio": jax.random.uniform(
      jax.random.PRNGKey(seed), (rows, kwargs.slice_len, 1), jnp.float32,
      -0.5, 0.5)}


def test_generator_ema_follows_its_recurrence_and_is_exported():
  config = wavegan_config.get_config("tiny").unlock()
  config.train.ema_decay = 0.999
  spec = wavegan_stage.make_spec(config)
  step = jax.jit(spec.step_fn)
  state = spec.init_fn()
  expected = state["params"]["generator"]
  for t in range(3):
    state, _ = step(state, _random_audio_batch(config, t),
                    jax.random.PRNGKey(t))
    decay = min(0.999, (1 + t) / (10 + t))
    expected = jax.tree.map(lambda e, p, d=decay: d * e + (1 - d) * p,
                            expected, state["params"]["generator"])
  assert list(state["ema_params"]) == ["generator"]
  for got, want, raw in zip(
      jax.tree.leaves(state["ema_params"]["generator"]),
      jax.tree.leaves(expected),
      jax.tree.leaves(state["params"]["generator"])):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # The export is the average, which has moved away from the last weights.
  exported = spec.export_fn(state)["generator"]
  assert all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(exported), jax.tree.leaves(
          state["ema_params"]["generator"])))
  assert any(not np.allclose(a, b) for a, b in zip(
      jax.tree.leaves(exported), jax.tree.leaves(
          state["params"]["generator"])))


def test_ema_decay_zero_keeps_no_copy_and_exports_the_weights():
  config = wavegan_config.get_config("tiny").unlock()
  config.train.ema_decay = 0.0
  spec = wavegan_stage.make_spec(config)
  state, _ = jax.jit(spec.step_fn)(spec.init_fn(),
                                   _random_audio_batch(config, 0),
                                   jax.random.PRNGKey(0))
  assert state["ema_params"] == {}
  assert spec.export_fn(state)["generator"] is state["params"]["generator"]


@pytest.mark.parametrize("decay", [1.0, -0.5, 1.5])
def test_bad_ema_decay_is_named(decay):
  config = wavegan_config.get_config("tiny").unlock()
  config.train.ema_decay = decay
  with pytest.raises(errors.UserFacingError,
                     match=rf"train.ema_decay must be in \[0, 1\).*got "
                     rf"{decay}"):
    wavegan_stage.make_spec(config)


def _tanh_critic(d_params, waveform, condition, rng):
  del condition, rng
  return jnp.sum(jnp.tanh(waveform[..., 0] * d_params["w"]), axis=-1)


@pytest.mark.parametrize("gp_examples", [None, 1, 3])
def test_gradient_penalty_on_a_subset_is_the_penalty_of_those_pairs(
    gp_examples):
  # The critic update's penalty is exactly the reference penalty of the
  # first gp_examples pairs, interpolated with the update's own key.
  real = jax.random.normal(jax.random.PRNGKey(1), (4, 16, 1))
  fake = jax.random.normal(jax.random.PRNGKey(2), (4, 16, 1))
  d_params = {"w": jnp.linspace(0.5, 2.0, 16)}
  optimizer = optax.sgd(0.1)
  state = state_lib.create_train_state({"discriminator": d_params},
                                       {"discriminator": optimizer})
  rng = jax.random.PRNGKey(3)
  _, metrics = gan.discriminator_update(
      state, _tanh_critic, real, fake, None, rng, kind="wgan-gp",
      gp_weight=10.0, optimizer=optimizer, gp_examples=gp_examples)
  gp_rng = jax.random.split(rng, 4)[2]
  count = 4 if gp_examples is None else gp_examples
  want = losses.gradient_penalty(
      lambda x: _tanh_critic(d_params, x, None, None), real[:count],
      fake[:count], gp_rng)
  np.testing.assert_allclose(metrics["gradient_penalty"], want, rtol=1e-6)
  wasserstein = (jnp.mean(_tanh_critic(d_params, fake, None, None))
                 - jnp.mean(_tanh_critic(d_params, real, None, None)))
  np.testing.assert_allclose(metrics["d_loss"], wasserstein + 10.0 * want,
                             rtol=1e-5)


def _one_update_config():
  config = wavegan_config.get_config("tiny").unlock()
  config.train.batch_size = 4
  config.wavegan.adversarial.d_steps = 1
  return config


def _step_flops(config, **adversarial):
  """XLA's FLOP count of the config's compiled step, with overrides."""
  config.wavegan.adversarial.update(adversarial)
  spec = wavegan_stage.make_spec(config)
  analysis = jax.jit(spec.step_fn).lower(
      spec.init_fn(), _random_audio_batch(config, 0),
      jax.random.PRNGKey(0)).compile().cost_analysis()
  if isinstance(analysis, list):  # Older jax: one dict per program.
    analysis = analysis[0]
  return analysis["flops"]


def test_gradient_penalty_subset_cuts_the_critic_update_flops():
  config = _one_update_config()
  full, all_four, one = (_step_flops(config, gp_examples=n)
                         for n in (0, 4, 1))
  assert full == all_four  # 0 and the whole batch are the same program.
  assert one < 0.9 * full


def _assert_make_spec_names(message, **adversarial):
  """make_spec of the tiny config at batch 4 with `adversarial` refuses."""
  config = wavegan_config.get_config("tiny").unlock()
  config.train.batch_size = 4
  config.wavegan.adversarial.update(adversarial)
  with pytest.raises(errors.UserFacingError, match=message):
    wavegan_stage.make_spec(config)


@pytest.mark.parametrize("gp_examples", [-1, 5, True])
def test_bad_gp_examples_is_named(gp_examples):
  _assert_make_spec_names(r"wavegan.adversarial.gp_examples must be an int "
                          rf"in \[0, 4\].*got {gp_examples}",
                          gp_examples=gp_examples)


def test_discriminator_updates_rejects_a_gp_subset_larger_than_an_update():
  with pytest.raises(ValueError, match=r"gp_examples must be an int in "
                     r"\[1, 2\].*got 3"):
    gan.discriminator_updates(
        {}, _tanh_critic, jnp.zeros((4, 16, 1)), None, None,
        jax.random.PRNGKey(0), num_updates=2, kind="wgan-gp", gp_weight=10.0,
        optimizer=optax.sgd(0.1), gp_examples=3)


def test_dc_block_post_filter_stays_out_of_the_training_step():
  # The critic scores the unfiltered output (run 55), so a step with the
  # post-filter is the step without it, bit for bit.
  new_params = []
  for length in (0, 31):
    config = _one_update_config()
    config.wavegan.model.dc_block_len = length
    spec = wavegan_stage.make_spec(config)
    state, _ = jax.jit(spec.step_fn)(spec.init_fn(),
                                     _random_audio_batch(config, 0),
                                     jax.random.PRNGKey(0))
    new_params.append(state["params"])
  assert_trees_equal(*new_params)


def _tiny_models_and_state(optimizer):
  config = _one_update_config()
  generator, discriminator = inference.wavegan_models(config)
  g_params = generator.init(jax.random.PRNGKey(1), jnp.zeros((1, 100)))
  d_params = discriminator.init(jax.random.PRNGKey(2),
                                jnp.zeros((1, 8192, 1)))
  state = state_lib.create_train_state(
      {"generator": g_params["params"], "discriminator": d_params["params"]},
      {"generator": optimizer, "discriminator": optimizer})
  return config, generator, discriminator, state


@pytest.mark.parametrize("gp_examples", [None, 2])
def test_simultaneous_step_equals_separate_gradients_at_one_state(
    gp_examples):
  # With plain SGD at rate 1 the update is minus the gradient, so the new
  # weights show each network's gradient. The reference takes them apart:
  # the critic's from the WGAN-GP loss with stop-gradient fakes, the
  # generator's from -E[D(G(z))] under the critic before its update.
  optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
  config, generator, discriminator, state = _tiny_models_and_state(optimizer)
  batch = _random_audio_batch(config, 0)
  rng = jax.random.PRNGKey(5)
  new_state, metrics = wavegan_stage._simultaneous_step(
      state, batch, rng, generator=generator, discriminator=discriminator,
      g_optimizer=optimizer, d_optimizer=optimizer, latent_dim=100,
      gp_weight=10.0, gp_examples=gp_examples, ema_decay=None)

  z_rng, d_rng = jax.random.split(rng)
  real_rng, fake_rng, gp_rng, gp_shuffle_rng = jax.random.split(d_rng, 4)
  z = inference.sample_latents(z_rng, 4, 100)
  real = batch["audio"]
  g_params = state["params"]["generator"]
  d_params = state["params"]["discriminator"]
  critic = lambda p, x, r: discriminator.apply({"params": p}, x, rng=r)
  fake = generator.apply({"params": g_params}, z, post_filter=False)
  count = 4 if gp_examples is None else gp_examples

  def d_loss(p):
    penalty = losses.gradient_penalty(
        lambda x: critic(p, x, gp_shuffle_rng), real[:count], fake[:count],
        gp_rng)
    return (jnp.mean(critic(p, fake, fake_rng))
            - jnp.mean(critic(p, real, real_rng)) + 10.0 * penalty)

  def g_loss(p):
    fake = generator.apply({"params": p}, z, post_filter=False)
    return -jnp.mean(critic(d_params, fake, fake_rng))

  want_d = jax.tree.map(jnp.subtract, d_params, jax.grad(d_loss)(d_params))
  want_g = jax.tree.map(jnp.subtract, g_params, jax.grad(g_loss)(g_params))
  for got, want in zip(jax.tree.leaves(new_state["params"]),
                       jax.tree.leaves({"discriminator": want_d,
                                        "generator": want_g})):
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
  np.testing.assert_allclose(metrics["d_loss"], d_loss(d_params), rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], g_loss(g_params), rtol=1e-5)
  assert int(new_state["step"]) == 1


def test_simultaneous_step_costs_fewer_flops_than_alternating():
  config = _one_update_config()
  # No second generator forward, no critic pass over a second fake batch.
  assert (_step_flops(config, simultaneous=True)
          < 0.85 * _step_flops(config, simultaneous=False))


@pytest.mark.parametrize("overrides, message", [
    (dict(simultaneous=True, loss="hinge"),
     r"simultaneous needs loss='wgan-gp' and d_steps=1.*loss='hinge'"),
    (dict(simultaneous=True, d_steps=5),
     r"simultaneous needs loss='wgan-gp' and d_steps=1.*d_steps=5"),
])
def test_bad_simultaneous_is_named(overrides, message):
  config = wavegan_config.get_config("tiny").unlock()
  config.wavegan.adversarial.update(overrides)
  with pytest.raises(errors.UserFacingError, match=message):
    wavegan_stage.make_spec(config)


@pytest.mark.parametrize("group,batch_size,gp_examples,message", [
    (-1, 4, 0, r"minibatch_std_group must be an int >= 0 \(0: off\), got -1"),
    (True, 4, 0, r"minibatch_std_group must be an int >= 0 \(0: off\), "
     r"got True"),
    (4, 6, 0, r"minibatch_std_group=4 does not divide the critic's batch of "
     r"6 \(train.batch_size / pack = 6, gp_examples all\)"),
    (2, 4, 3, r"minibatch_std_group=2 does not divide the critic's batch of "
     r"3 \(train.batch_size / pack = 4, gp_examples 3\)"),
])
def test_bad_minibatch_std_group_is_named(group, batch_size, gp_examples,
                                          message):
  config = wavegan_config.get_config("tiny").unlock()
  config.train.batch_size = batch_size
  config.wavegan.adversarial.d_steps = 1
  config.wavegan.adversarial.gp_examples = gp_examples
  config.wavegan.discriminator.minibatch_std_group = group
  with pytest.raises(errors.UserFacingError, match=message):
    wavegan_stage.make_spec(config)


def test_minibatch_std_step_trains_on_every_example(manual_dir, tmp_path):
  # A group larger than the per-update batch shrinks to it; the step runs
  # and the critic's output layer reads the extra channel.
  config = wavegan_config.get_config("tiny").unlock()
  config.wavegan.discriminator.minibatch_std_group = 4
  spec = wavegan_stage.make_spec(config, manual_dir=str(manual_dir),
                                 data_dir=str(tmp_path / "tfds"))
  state = spec.init_fn()
  kernel = state["params"]["discriminator"]["output"]["kernel"]
  assert kernel.shape == (8 * (16 * config.wavegan.discriminator.dim + 1), 1)
  new_state, metrics = jax.jit(spec.step_fn)(
      state, next(spec.make_batches(0)), jax.random.PRNGKey(0))
  assert int(new_state["step"]) == 1
  assert all(np.isfinite(float(metrics[k]))
             for k in ("g_loss", "d_loss", "gradient_penalty"))
  # The extra channel's weights were trained like every other.
  assert float(jnp.max(jnp.abs(
      new_state["params"]["discriminator"]["output"]["kernel"] - kernel))) > 0


def test_pack_examples_stacks_consecutive_clips_along_channels():
  clips = jnp.arange(6 * 5 * 1, dtype=jnp.float32).reshape(6, 5, 1)
  packed = wavegan_stage.pack_examples(clips, 3)
  assert packed.shape == (2, 5, 3)
  for j in range(2):
    for k in range(3):
      np.testing.assert_array_equal(packed[j, :, k], clips[3 * j + k, :, 0])
  assert wavegan_stage.pack_examples(clips, 1) is clips


@pytest.mark.parametrize("simultaneous", [False, True])
def test_packed_step_scores_packs_of_every_clip(simultaneous, monkeypatch):
  config = _one_update_config().unlock()
  config.wavegan.adversarial.pack = 2
  config.wavegan.adversarial.simultaneous = simultaneous
  latent_batches = _record_latent_batches(monkeypatch)
  spec = wavegan_stage.make_spec(config)
  state = spec.init_fn()
  # The critic's first convolution reads the 2 clips of a pack.
  assert state["params"]["discriminator"]["downconv_0"]["kernel"].shape[-2] \
      == 2
  del latent_batches[:]
  new_state, metrics = jax.jit(spec.step_fn)(
      state, _random_audio_batch(config, 0), jax.random.PRNGKey(0))
  # Every update generates train.batch_size clips, as without packing.
  batch = config.train.batch_size
  assert latent_batches == [batch] * (1 if simultaneous else 2)
  assert int(new_state["step"]) == 1
  assert all(np.isfinite(float(metrics[k]))
             for k in ("g_loss", "d_loss", "gradient_penalty"))


def _one_critic_update(config, spec, batch_seed, rng):
  """(state, batch, step metrics, z, critic rng) of one alternating step
  with one critic update: z and the key are those the step's update drew."""
  state = spec.init_fn()
  batch = _random_audio_batch(config, batch_seed)
  _, metrics = jax.jit(spec.step_fn)(state, batch, rng)
  d_rng, _, _ = jax.random.split(rng, 3)
  (update_rng,) = jax.random.split(d_rng, 1)
  fake_rng, critic_rng = jax.random.split(update_rng)
  z = inference.sample_latents(fake_rng, config.train.batch_size,
                               config.wavegan.latent_dim)
  return state, batch, metrics, z, critic_rng


def test_packed_critic_loss_is_the_critic_loss_of_the_packs():
  # The step's critic update equals gan.critic_loss on packed arrays.
  config = _one_update_config().unlock()
  config.wavegan.adversarial.pack = 2
  spec = wavegan_stage.make_spec(config)
  state, batch, metrics, z, critic_rng = _one_critic_update(
      config, spec, 1, jax.random.PRNGKey(3))
  generator, discriminator = inference.wavegan_models(config)
  fake = generator.apply({"params": state["params"]["generator"]}, z,
                         post_filter=False)
  loss, _ = gan.critic_loss(
      wavegan_stage._critic_fn(discriminator),
      state["params"]["discriminator"],
      wavegan_stage.pack_examples(batch["audio"], 2),
      wavegan_stage.pack_examples(fake, 2), None, critic_rng,
      kind="wgan-gp", gp_weight=10.0)
  np.testing.assert_allclose(metrics["d_loss"], loss, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pack", [0, 3, True, -2])
def test_bad_pack_is_named(pack):
  _assert_make_spec_names(r"wavegan.adversarial.pack must be an int >= 1 "
                          rf"that divides train.batch_size \(4\), got "
                          rf"{pack!r}", pack=pack)


def test_gp_examples_count_packs():
  _assert_make_spec_names(r"gp_examples must be an int in \[0, 2\] "
                          r"\(train.batch_size / pack; 0: all\), got 3",
                          d_steps=1, pack=2, gp_examples=3)


@pytest.mark.parametrize("simultaneous,term", [
    (False, "waveform"), (True, "waveform"), (False, "log_mel"),
    (True, "log_mel"), (False, "loudness"), (True, "loudness")])
def test_extra_terms_add_their_gradient_to_the_generator_only(simultaneous,
                                                              term):
  # With SGD at rate 1, the step with a term minus the step without it is
  # -weight * grad(term) in the generator and 0 in the critic: the same
  # latents and critic serve both steps. Mode seeking in the log-mel space
  # reads log_mel_features of the clips; the loudness term compares the
  # clips with the real batch.
  optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
  config, generator, discriminator, state = _tiny_models_and_state(optimizer)
  batch = _random_audio_batch(config, 2)
  rng = jax.random.PRNGKey(7)
  common = dict(generator=generator, discriminator=discriminator,
                g_optimizer=optimizer, d_optimizer=optimizer, latent_dim=100,
                gp_weight=10.0, gp_examples=None, ema_decay=None)
  if simultaneous:
    step = functools.partial(wavegan_stage._simultaneous_step, **common)
    z_rng = jax.random.split(rng)[0]
  else:
    step = functools.partial(wavegan_stage._step, kind="wgan-gp",
                             d_steps=1, **common)
    z_rng = jax.random.split(rng, 3)[1]
  weight = 0.5
  z = inference.sample_latents(z_rng, 4, 100)
  g_params = state["params"]["generator"]
  plain, plain_metrics = step(state, batch, rng)
  if term == "loudness":
    seeking, metrics = step(state, batch, rng, loudness_weight=weight,
                            loudness_frame_length=64)
    metric = "loudness_distance"
    loss_fn = lambda p: losses.loudness_distance(
        generator.apply({"params": p}, z, post_filter=False), batch["audio"],
        64)
  else:
    features = wavegan_options.mode_seeking_features_from(
        {"mode_seeking_space": term}, "waveform",
        config.data.builder_kwargs.sample_rate)
    assert (features is None) == (term == "waveform")
    seeking, metrics = step(state, batch, rng, mode_seeking_weight=weight,
                            mode_seeking_features=features)
    metric = "mode_seeking_loss"
    as_seen = features or (lambda clips: clips)
    loss_fn = lambda p: losses.mode_seeking_loss(
        as_seen(generator.apply({"params": p}, z, post_filter=False)), z)[0]
  ms_loss, ms_grad = jax.value_and_grad(loss_fn)(g_params)
  # The adversarial gradient, summed in another order, leaves float32
  # noise far below the term's own size (checked on the next line).
  for got, without, grad in zip(
      jax.tree.leaves(seeking["params"]["generator"]),
      jax.tree.leaves(plain["params"]["generator"]), jax.tree.leaves(ms_grad)):
    np.testing.assert_allclose(got - without, -weight * grad, rtol=3e-3,
                               atol=3e-4)
  assert max(float(jnp.max(jnp.abs(weight * g)))
             for g in jax.tree.leaves(ms_grad)) > 0.03
  for got, without in zip(jax.tree.leaves(seeking["params"]["discriminator"]),
                          jax.tree.leaves(plain["params"]["discriminator"])):
    np.testing.assert_array_equal(got, without)
  np.testing.assert_allclose(metrics[metric], ms_loss, rtol=1e-5)
  # g_loss and d_loss stay the adversarial terms, comparable across runs.
  for key in ("g_loss", "d_loss"):
    np.testing.assert_allclose(metrics[key], plain_metrics[key], rtol=1e-6)
  assert metric not in plain_metrics


# The config's float field already refuses bools and strings.
@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_bad_mode_seeking_weight_is_named(weight):
  _assert_make_spec_names(r"mode_seeking_weight must be a finite number >= 0 "
                          r"\(0: off\)", mode_seeking_weight=weight)


def test_bad_mode_seeking_space_is_named():
  _assert_make_spec_names(r"mode_seeking_space must be one of waveform, "
                          r"log_mel, got 'mel'", mode_seeking_weight=1.0,
                          mode_seeking_space="mel")


def test_log_mel_mode_seeking_on_a_specgan_is_named():
  config = tiny_specgan_config().unlock()
  config.wavegan.adversarial.mode_seeking_weight = 1.0
  config.wavegan.adversarial.mode_seeking_space = "log_mel"
  with pytest.raises(errors.UserFacingError,
                     match="mode_seeking_space='log_mel' reads waveforms; a "
                           "spectrogram generator's outputs are not"):
    wavegan_stage.make_spec(config)


def test_log_mel_features_fold_channels_and_floor_the_silence():
  # Two channels of 8 kHz audio: 32 ms frames (256 samples, hop 64), 40
  # bands per frame, the channels' frames one after the other. Silence
  # sits at the floor, log of white noise at -50 dBFS in each band.
  clip = np.zeros((2, 8192, 2), np.float32)
  clip[1, :, 1] = np.sin(np.arange(8192) * 2 * np.pi * 440 / 8000)
  got = np.asarray(wavegan_options.log_mel_features(jnp.asarray(clip), 8000))
  assert got.shape == (2, 2 * 129, 40)
  floor = np.log(spectral.noise_mel_floor(8000, 256, 40, -50.0))
  np.testing.assert_allclose(got[0], np.broadcast_to(floor, (258, 40)),
                             atol=1e-4)
  np.testing.assert_allclose(got[1, :129], got[0, :129], atol=1e-4)
  assert np.max(got[1, 129:] - floor) > 5.0


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_bad_loudness_weight_is_named(weight):
  _assert_make_spec_names(r"loudness_weight must be a finite number >= 0 "
                          r"\(0: off\)", loudness_weight=weight)


def test_loudness_on_a_specgan_is_named():
  config = tiny_specgan_config().unlock()
  config.wavegan.adversarial.loudness_weight = 1.0
  with pytest.raises(errors.UserFacingError,
                     match="loudness_weight=1.0 reads waveforms; a "
                           "spectrogram generator's outputs are not"):
    wavegan_stage.make_spec(config)


@pytest.mark.parametrize("start,weight,message", [
    (-1, 1.0, "must be an int in"), (4, 1.0, r"\[0, num_steps=4\)"),
    (True, 1.0, "must be an int in"),
    (2, 0.0, r"loudness_start_step=2 needs wavegan.adversarial."
             r"loudness_weight > 0")])
def test_bad_loudness_start_step_is_named(start, weight, message):
  # The tiny config trains 4 steps.
  _assert_make_spec_names(message, loudness_weight=weight,
                          loudness_start_step=start)


def test_loudness_term_waits_for_its_start_step():
  # Steps before loudness_start_step run a step without the term: the same
  # numbers as a config without it; from the start on the term is live.
  config = wavegan_config.get_config("tiny").unlock()
  config.wavegan.adversarial.update(loudness_weight=1.0,
                                    loudness_start_step=3)
  spec = wavegan_stage.make_spec(config)
  assert spec.warm_up_steps == 3
  config.wavegan.adversarial.update(loudness_weight=0.0,
                                    loudness_start_step=0)
  without = wavegan_stage.make_spec(config)
  assert without.warm_up_steps == 0 and without.warm_up_step_fn is None
  state = spec.init_fn()
  batch = _random_audio_batch(config, 0)
  rng = jax.random.PRNGKey(1)
  warm, warm_metrics = jax.jit(spec.warm_up_step_fn)(state, batch, rng)
  reference, _ = jax.jit(without.step_fn)(state, batch, rng)
  assert_trees_equal(warm["params"], reference["params"])
  assert "loudness_distance" not in warm_metrics
  full, full_metrics = jax.jit(spec.step_fn)(state, batch, rng)
  assert float(full_metrics["loudness_distance"]) > 0
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: float(jnp.max(jnp.abs(a - b))),
      full["params"]["generator"], warm["params"]["generator"]))
  assert max(moved) > 0


def test_loudness_frames_are_32_ms_and_need_one_frame():
  adversarial = {"loudness_weight": 1.0}
  builder = ml_collections.ConfigDict({"sample_rate": 8000,
                                       "slice_len": 8192})
  assert wavegan_options.loudness_from(adversarial, "waveform", builder) == {
      "loudness_weight": 1.0, "loudness_frame_length": 256}
  builder.slice_len = 200
  with pytest.raises(errors.UserFacingError,
                     match=r"at least one 32 ms frame \(256 samples\), got "
                           r"slice_len 200"):
    wavegan_options.loudness_from(adversarial, "waveform", builder)


def test_mode_seeking_needs_an_even_batch():
  config = wavegan_config.get_config("tiny").unlock()
  config.train.batch_size = 3
  config.wavegan.adversarial.mode_seeking_weight = 1.0
  with pytest.raises(errors.UserFacingError,
                     match="needs an even train.batch_size, got 3"):
    wavegan_stage.make_spec(config)


def test_specgan_state_holds_the_train_moments_and_keeps_them(manual_dir,
                                                               tmp_path):
  # The generator's moment params are the train split's per-bin moments
  # (recomputed here from the clips), the critic reads 128 x 128
  # spectrograms, and a step trains every weight but the moments.
  config = tiny_specgan_config()
  spec = wavegan_stage.make_spec(config, manual_dir=str(manual_dir),
                                 data_dir=str(tmp_path / "tfds"))
  state = spec.init_fn()
  g_params = state["params"]["generator"]
  clips = np.concatenate([batch["audio"] for batch in pipeline.make_dataset(
      config.data.name, "train", global_batch_size=256,
      data_dir=str(tmp_path / "tfds"),
      builder_kwargs=dict(config.data.builder_kwargs), shuffle=False,
      repeat=False, drop_remainder=False, process_index=0, process_count=1,
      manual_dir=str(manual_dir / config.data.folder)).as_numpy_iterator()])
  assert len(clips) == 2700  # FSDD's train takes, one slice each.
  log_mag = np.asarray(specgan.log_magnitude(clips, 8192), np.float64)
  np.testing.assert_allclose(g_params["log_magnitude_mean"],
                             log_mag.mean((0, 1)), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(g_params["log_magnitude_std"],
                             log_mag.std((0, 1)), rtol=1e-3, atol=1e-4)
  new_state, metrics = jax.jit(spec.step_fn)(
      state, next(spec.make_batches(0)), jax.random.PRNGKey(0))
  assert all(np.isfinite(float(metrics[k]))
             for k in ("g_loss", "d_loss", "gradient_penalty"))
  new_g = new_state["params"]["generator"]
  for name in ("log_magnitude_mean", "log_magnitude_std"):
    np.testing.assert_array_equal(new_g[name], g_params[name])
  # Everything else trained, but the critic's output bias: it cancels in
  # the Wasserstein loss and the penalty does not see it.
  still = [jax.tree_util.keystr(path) for (path, new), old in zip(
      jax.tree_util.tree_leaves_with_path(new_state["params"]),
      jax.tree.leaves(state["params"])) if not np.any(new != old)]
  assert still == ["['discriminator']['output']['bias']",
                   "['generator']['log_magnitude_mean']",
                   "['generator']['log_magnitude_std']"]


def test_specgan_critic_scores_normalized_spectrograms(monkeypatch):
  # The step's critic loss equals gan.critic_loss on the normalised
  # spectrograms of the real clips and of the generator's output.
  config = tiny_specgan_config().unlock()
  config.wavegan.adversarial.d_steps = 1
  config.train.batch_size = 2
  moments = (np.linspace(-6.0, -2.0, 128).astype(np.float32),
             np.linspace(0.5, 2.0, 128).astype(np.float32))
  monkeypatch.setattr(wavegan_stage, "spectrogram_moments",
                      lambda *args, **kwargs: moments)
  spec = wavegan_stage.make_spec(config)
  state, batch, metrics, z, critic_rng = _one_critic_update(
      config, spec, 4, jax.random.PRNGKey(9))
  generator, discriminator = inference.wavegan_models(config)
  fake = generator.apply({"params": state["params"]["generator"]}, z,
                         spectrogram=True)
  real = specgan.normalize(specgan.log_magnitude(batch["audio"], 8192),
                           *moments)[..., None]
  assert fake.shape == real.shape == (2, 128, 128, 1)
  loss, _ = gan.critic_loss(
      wavegan_stage._critic_fn(discriminator),
      state["params"]["discriminator"], real, fake, None, critic_rng,
      kind="wgan-gp", gp_weight=10.0)
  np.testing.assert_allclose(metrics["d_loss"], loss, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("overrides, message", [
    (dict(representation="image"),
     r"wavegan.representation must be one of \('waveform', 'spectrogram'\), "
     r"got 'image'"),
    (dict(adversarial_pack=2), r"pack=2 packs waveforms .* needs pack=1"),
])
def test_bad_specgan_settings_are_named(overrides, message):
  config = tiny_specgan_config().unlock()
  if "representation" in overrides:
    config.wavegan.representation = overrides["representation"]
  else:
    config.wavegan.adversarial.pack = overrides["adversarial_pack"]
  with pytest.raises(errors.UserFacingError, match=message):
    wavegan_stage.make_spec(config)


def _spectral_critic(optimizer, weight=0.5, feature_matching=2.0):
  from wavegan_jax.models import vocoder_discriminators
  module = vocoder_discriminators.VocoderDiscriminator(
      periods=(2, 3), period_channels=(2, 4), fft_sizes=(128,),
      spectrogram_channels=2)
  return {"module": module, "optimizer": optimizer, "weight": weight,
          "feature_matching": feature_matching}


def test_spectral_critic_adds_its_terms_to_the_generator_then_trains():
  # With SGD at rate 1 the generator's step with the patch critic minus the
  # step without it is -grad(weight * lsgan + fm * matching) at the critic's
  # params before its update; the critic then takes one LSGAN step on the
  # step's generated clips against the real ones, and WaveGAN's critic is
  # the same in both steps.
  optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
  config, generator, discriminator, state = _tiny_models_and_state(optimizer)
  spectral_critic = _spectral_critic(optimizer)
  module = spectral_critic["module"]
  s_params = module.init(jax.random.PRNGKey(3),
                         jnp.zeros((1, config.data.builder_kwargs.slice_len,
                                    1)))["params"]
  with_critic = state_lib.create_train_state(
      {**state["params"], "spectral_discriminator": s_params},
      {"generator": optimizer, "discriminator": optimizer,
       "spectral_discriminator": optimizer})
  batch = _random_audio_batch(config, 2)
  rng = jax.random.PRNGKey(7)
  step = functools.partial(
      wavegan_stage._step, generator=generator, discriminator=discriminator,
      g_optimizer=optimizer, d_optimizer=optimizer, latent_dim=100,
      gp_weight=10.0, gp_examples=None, ema_decay=None, kind="wgan-gp",
      d_steps=1)
  plain, _ = step(state, batch, rng)
  got, metrics = step(with_critic, batch, rng,
                      spectral_critic=spectral_critic)
  z = inference.sample_latents(jax.random.split(rng, 3)[1], 4, 100)
  real = batch["audio"][:4]

  def term(g_params):
    fake = generator.apply({"params": g_params}, z, post_filter=False)
    return wavegan_stage._spectral_generator_terms(
        spectral_critic, s_params, fake, real)[0]

  want_term, grad = jax.value_and_grad(term)(state["params"]["generator"])
  for a, b, g in zip(jax.tree.leaves(got["params"]["generator"]),
                     jax.tree.leaves(plain["params"]["generator"]),
                     jax.tree.leaves(grad)):
    np.testing.assert_allclose(a - b, -g, rtol=3e-3, atol=3e-4)
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) > 0
  np.testing.assert_allclose(
      0.5 * metrics["spectral_adversarial"]
      + 2.0 * metrics["spectral_feature_matching"], want_term, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(got["params"]["discriminator"]),
                  jax.tree.leaves(plain["params"]["discriminator"])):
    np.testing.assert_array_equal(a, b)
  fake = generator.apply({"params": state["params"]["generator"]}, z,
                         post_filter=False)
  d_grad = jax.grad(lambda p: losses.discriminator_loss(
      "lsgan", module.apply({"params": p}, real),
      module.apply({"params": p}, fake)))(s_params)
  # The step's clips come from the jitted generator, these from an eager
  # call: their rounding differs (~5e-6 in this gradient on an AVX2 host,
  # where the gradient's entries are ~1e-3).
  for a, b, g in zip(jax.tree.leaves(got["params"]["spectral_discriminator"]),
                     jax.tree.leaves(s_params), jax.tree.leaves(d_grad)):
    np.testing.assert_allclose(a - b, -g, rtol=1e-3, atol=2e-5)
  assert float(metrics["spectral_d_loss"]) > 0


@pytest.mark.parametrize("overrides, message", [
    ({"weight": -1.0}, "spectral_critic.weight must be a finite number"),
    ({"feature_matching": float("nan")},
     "spectral_critic.feature_matching must be a finite number"),
])
def test_bad_spectral_critic_weights_are_named(overrides, message):
  config = wavegan_config.get_config("tiny").unlock()
  config.wavegan.spectral_critic.update(overrides)
  with pytest.raises(errors.UserFacingError, match=message):
    wavegan_stage.make_spec(config.lock())


def test_spectral_critic_needs_the_alternating_step_and_waveforms():
  config = wavegan_config.get_config("tiny").unlock()
  config.wavegan.spectral_critic.weight = 1.0
  config.wavegan.adversarial.simultaneous = True
  config.wavegan.adversarial.d_steps = 1
  with pytest.raises(errors.UserFacingError,
                     match="needs the alternating step"):
    wavegan_stage.make_spec(config.lock())


def test_spectral_critic_state_trains_in_a_tiny_step(manual_dir, tmp_path):
  config = wavegan_config.get_config("tiny").unlock()
  config.wavegan.spectral_critic.update(
      weight=1.0, feature_matching=2.0, periods=(2,), period_channels=(2,),
      fft_sizes=(128,), spectrogram_channels=2)
  spec = wavegan_stage.make_spec(config.lock())
  state = spec.init_fn()
  assert "spectral_discriminator" in state["params"]
  batch = _random_audio_batch(config, 0)
  new_state, metrics = jax.jit(spec.step_fn)(state, batch,
                                             jax.random.PRNGKey(0))
  for key in ("spectral_adversarial", "spectral_feature_matching",
              "spectral_d_loss"):
    assert np.isfinite(float(metrics[key]))
  moved = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(new_state["params"]["spectral_discriminator"]),
      jax.tree.leaves(state["params"]["spectral_discriminator"]))]
  assert max(moved) > 0
