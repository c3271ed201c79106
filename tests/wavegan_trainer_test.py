"""The unconditional WaveGAN stage: batch arithmetic of every config variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import wavegan as wavegan_config
from wavegan_jax.training import stage_runner
from wavegan_jax.training import wavegan_trainer


def _abstract_batch(config):
  kwargs = config.data.builder_kwargs
  rows = config.train.batch_size * config.wavegan.adversarial.d_steps
  return {"audio": jax.ShapeDtypeStruct(
      (rows, kwargs.slice_len, kwargs.num_channels), jnp.float32)}


@pytest.mark.parametrize("variant", ["default", "paper", "tiny"])
def test_every_variant_traces_a_step(variant, monkeypatch):
  # Traced abstractly (no FLOPs): a step of the variant's real batch must
  # be well formed, with every update on train.batch_size examples.
  config = wavegan_config.get_config(None if variant == "default" else variant)
  latent_batches = []
  sample = wavegan_trainer.sample_latents

  def recording_sample(rng, batch_size, latent_dim):
    latent_batches.append(batch_size)
    return sample(rng, batch_size, latent_dim)

  monkeypatch.setattr(wavegan_trainer, "sample_latents", recording_sample)
  spec = wavegan_trainer.make_spec(config)
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
  spec = wavegan_trainer.make_spec(config, manual_dir=str(manual_dir),
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
  with pytest.raises(stage_runner.UserFacingError,
                     match=rf"d_steps must be a positive int, got {d_steps}"):
    wavegan_trainer.make_spec(config)


def _random_audio_batch(config, seed):
  kwargs = config.data.builder_kwargs
  rows = config.train.batch_size * config.wavegan.adversarial.d_steps
  return {"audio": jax.random.uniform(
      jax.random.PRNGKey(seed), (rows, kwargs.slice_len, 1), jnp.float32,
      -0.5, 0.5)}


def test_generator_ema_follows_its_recurrence_and_is_exported():
  config = wavegan_config.get_config("tiny").unlock()
  config.train.ema_decay = 0.999
  spec = wavegan_trainer.make_spec(config)
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
  spec = wavegan_trainer.make_spec(config)
  state, _ = jax.jit(spec.step_fn)(spec.init_fn(),
                                   _random_audio_batch(config, 0),
                                   jax.random.PRNGKey(0))
  assert state["ema_params"] == {}
  assert spec.export_fn(state)["generator"] is state["params"]["generator"]


@pytest.mark.parametrize("decay", [1.0, -0.5, 1.5])
def test_bad_ema_decay_is_named(decay):
  config = wavegan_config.get_config("tiny").unlock()
  config.train.ema_decay = decay
  with pytest.raises(stage_runner.UserFacingError,
                     match=rf"train.ema_decay must be in \[0, 1\).*got "
                     rf"{decay}"):
    wavegan_trainer.make_spec(config)
