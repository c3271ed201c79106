"""Tests of wavegan_jax/inference.py: models built from configs, run forward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import wavegan as wavegan_config
from tests import conftest
from wavegan_jax import errors
from wavegan_jax import inference


def test_av_models_generate_one_clip_per_example():
  config = conftest.tiny_av_config()
  modules = inference.av_models(config)
  assert set(modules) == {"acoustic", "visual", "generator", "discriminator"}
  inputs = inference.av_example_inputs(config, batch_size=2)
  assert inputs["video"].shape == (2, config.data.num_frames,
                                   config.data.frame_size,
                                   config.data.frame_size, 1)
  assert inputs["video"].dtype == jnp.uint8

  def generated():
    rng = jax.random.PRNGKey(0)
    encoders = {
        "acoustic": modules["acoustic"].init(rng, inputs["target"])["params"],
        "visual": modules["visual"].init(rng, inputs["video"])["params"]}
    contexts = inference.conditioning(modules, encoders, inputs)
    z = inference.noise(rng, 2, config)
    generator = modules["generator"].init(rng, *contexts, z=z)["params"]
    return inference.generate(modules, generator, encoders, inputs, z)

  assert jax.eval_shape(generated).shape == (2, config.data.num_samples)


def test_unknown_discriminator_kind_is_named():
  config = conftest.tiny_av_config(**{"generator.discriminator.kind": "mel"})
  with pytest.raises(ValueError, match="generator.discriminator.kind"):
    inference.av_models(config)


def test_missing_encoder_export_names_the_stage(tmp_path):
  config = conftest.tiny_av_config()
  with pytest.raises(errors.UserFacingError, match="--stages=acoustic"):
    inference.load_encoders(config, str(tmp_path),
                            inference.av_models(config))


@pytest.mark.parametrize("variant, shape", [
    ("tiny", None), ("specgan", (1, 128, 128, 1))])
def test_wavegan_models_and_their_critic_input(variant, shape):
  config = wavegan_config.get_config(variant)
  generator, _ = inference.wavegan_models(config)
  builder = config.data.builder_kwargs
  assert inference.critic_input_shape(config) == (
      shape or (1, builder.slice_len, builder.num_channels))
  z = inference.sample_latents(jax.random.PRNGKey(0), 3,
                               config.wavegan.latent_dim)
  assert z.shape == (3, config.wavegan.latent_dim)
  assert np.all(np.abs(np.asarray(z)) <= 1.0)
  if variant == "tiny":
    audio = jax.eval_shape(lambda: generator.apply(
        generator.init(jax.random.PRNGKey(0), z), z))
    assert audio.shape == (3, builder.slice_len, builder.num_channels)
