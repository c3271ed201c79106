"""Every stage's models built from a config, and the generators run forward.

The one place that turns an experiment config into Flax modules: the
trainers, generation, evaluation, the parameter summary and the benchmarks
all build their models here, so that nothing that only runs a trained model
imports a trainer. Also here: the pure forward functions of the audio-visual
generator (`conditioning`, `generate`), its noise and WaveGAN's latents, and
the params-only load of the encoders' exports.
"""

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections

from wavegan_jax import errors
from wavegan_jax.models import acoustic as acoustic_lib
from wavegan_jax.models import generator as generator_lib
from wavegan_jax.models import judge as judge_lib
from wavegan_jax.models import specgan as specgan_lib
from wavegan_jax.models import stft_discriminator
from wavegan_jax.models import visual as visual_lib
from wavegan_jax.models import vocoder_discriminators
from wavegan_jax.models import wavegan as wavegan_lib
from wavegan_jax.training import checkpointing

# The audio-visual generator's critics, by `generator.discriminator.kind`.
DISCRIMINATORS = {
    "wavegan": wavegan_lib.WaveGANDiscriminator,
    "stft": stft_discriminator.MultiResolutionSTFTDiscriminator,
    "vocoder": vocoder_discriminators.VocoderDiscriminator,
}
ENCODERS = ("acoustic", "visual")
# What the WaveGAN stage's generator makes and its critic scores: waveforms
# (WaveGAN) or normalised log-magnitude spectrograms inverted by Griffin-Lim
# (SpecGAN).
REPRESENTATIONS = ("waveform", "spectrogram")


def acoustic_model(config: ml_collections.ConfigDict):
  """The AcousticModel of an audio-visual config (`acoustic.model`)."""
  return acoustic_lib.AcousticModel(sample_rate=config.data.sample_rate,
                                    **config.acoustic.model)


def visual_model(config: ml_collections.ConfigDict):
  """The VisualModel of an audio-visual config (`visual.model`)."""
  return visual_lib.VisualModel(frame_size=config.data.frame_size,
                                **config.visual.model)


def av_models(config: ml_collections.ConfigDict) -> dict:
  """{'acoustic', 'visual', 'generator', 'discriminator'} modules.

  Raises:
    ValueError: for an unknown `generator.discriminator.kind`.
  """
  data = config.data
  generator_config = dict(config.generator.model)
  generator_config.setdefault("sample_rate", data.sample_rate)
  generator = generator_lib.AVGenerator(
      num_samples=data.num_samples, num_frames=data.num_frames,
      **generator_config)
  disc_config = dict(config.generator.discriminator)
  kind = disc_config.pop("kind")
  if kind not in DISCRIMINATORS:
    raise ValueError(f"generator.discriminator.kind must be one of "
                     f"{sorted(DISCRIMINATORS)}, got {kind!r}")
  # One dict serves every kind: each reads the keys it has attributes for.
  module = DISCRIMINATORS[kind]
  fields = {field.name for field in dataclasses.fields(module)}
  kwargs = {k: v for k, v in disc_config.items() if k in fields}
  if kind == "wavegan":
    kwargs["slice_len"] = data.num_samples
  discriminator = module(**kwargs)
  return {"acoustic": acoustic_model(config),
          "visual": visual_model(config),
          "generator": generator, "discriminator": discriminator}


def av_example_inputs(config: ml_collections.ConfigDict,
                      batch_size: int = 1) -> dict:
  """Zero 'video', 'reference' and 'target' of an audio-visual batch."""
  data = config.data
  size = data.frame_size
  return {
      "video": jnp.zeros((batch_size, data.num_frames, size, size, 1),
                         jnp.uint8),
      "reference": jnp.zeros((batch_size, data.num_samples), jnp.float32),
      "target": jnp.zeros((batch_size, data.num_samples), jnp.float32),
  }


def load_encoders(config, workdir, modules) -> dict:
  """The encoders' params from the earlier stages' exports, shape-checked.

  Raises:
    UserFacingError: when a stage's export is missing.
    CheckpointMismatchError: naming the parameter and both shapes.
  """
  inputs = av_example_inputs(config)
  expected = {
      "acoustic": jax.eval_shape(
          lambda: modules["acoustic"].init(jax.random.PRNGKey(0),
                                           inputs["target"])["params"]),
      "visual": jax.eval_shape(
          lambda: modules["visual"].init(jax.random.PRNGKey(0),
                                         inputs["video"])["params"]),
  }
  params = {}
  for name in ENCODERS:
    path = checkpointing.export_path(workdir, name)
    if not os.path.isdir(path):
      raise errors.UserFacingError(
          f"The generator stage needs the {name} stage's export at {path}; "
          f"train that stage first (--stages={name}).")
    params[name] = checkpointing.load_params(path, expected[name], name=name)
  return params


def conditioning(modules, encoder_params, batch):
  """(visual context [B,T,Dv], acoustic context, acoustic style)."""
  visual_context = modules["visual"].apply(
      {"params": encoder_params["visual"]}, batch["video"],
      method=modules["visual"].encode)
  acoustic_context, style = modules["acoustic"].apply(
      {"params": encoder_params["acoustic"]}, batch["reference"],
      method=modules["acoustic"].encode)
  return visual_context, acoustic_context, style


def generate(modules, generator_params, encoder_params, batch, z,
             visual_noise=None):
  """Waveforms [B, N] for a batch with 'video' and 'reference'.

  visual_noise: optional (std, rng): training-time Gaussian noise added to
  the visual context. The train split pairs each recording with one MNIST
  image, so without it the generator memorises image -> take and the digit
  does not carry over to new images (docs/experiment_log.md).
  """
  visual_context, acoustic_context, style = conditioning(
      modules, encoder_params, batch)
  if visual_noise is not None and visual_noise[0]:
    std, rng = visual_noise
    visual_context = visual_context + std * jax.random.normal(
        rng, visual_context.shape, visual_context.dtype)
  return modules["generator"].apply(
      {"params": generator_params}, visual_context, acoustic_context, style,
      z=z)


def noise(rng, batch_size, config):
  """The generator's noise [B, noise_features], or None without it."""
  features = config.generator.model.get("noise_features", 0)
  if not features:
    return None
  return jax.random.normal(rng, (batch_size, features))


def representation_of(config: ml_collections.ConfigDict) -> str:
  """`wavegan.representation` ('waveform' when absent), checked.

  Raises:
    ValueError: for a name not in REPRESENTATIONS.
  """
  representation = config.wavegan.get("representation", "waveform")
  if representation not in REPRESENTATIONS:
    raise ValueError(f"wavegan.representation must be one of "
                     f"{REPRESENTATIONS}, got {representation!r}")
  return representation


def wavegan_models(config: ml_collections.ConfigDict):
  """(generator, discriminator) of a WaveGAN (or SpecGAN) config."""
  slice_len = config.data.builder_kwargs.slice_len
  channels = config.data.builder_kwargs.num_channels
  if representation_of(config) == "spectrogram":
    return (specgan_lib.SpecGANGenerator(
        slice_len=slice_len, num_channels=channels, **config.wavegan.model),
            specgan_lib.SpecGANDiscriminator(**config.wavegan.discriminator))
  generator = wavegan_lib.WaveGANGenerator(
      slice_len=slice_len, num_channels=channels, **config.wavegan.model)
  discriminator = wavegan_lib.WaveGANDiscriminator(
      slice_len=slice_len, **config.wavegan.discriminator)
  return generator, discriminator


def critic_input_shape(config: ml_collections.ConfigDict, pack: int = 1):
  """The shape of one critic input: a (packed) waveform or a spectrogram."""
  if representation_of(config) == "spectrogram":
    return (1, specgan_lib.SPEC_BINS, specgan_lib.SPEC_BINS, 1)
  builder = config.data.builder_kwargs
  return (1, builder.slice_len, builder.num_channels * pack)


def sample_latents(rng, batch_size, latent_dim):
  """WaveGAN's z ~ U[-1, 1]^latent_dim, [batch_size, latent_dim]."""
  return jax.random.uniform(rng, (batch_size, latent_dim), jnp.float32,
                            -1.0, 1.0)


def judge_model(config: ml_collections.ConfigDict) -> judge_lib.AudioJudge:
  """The AudioJudge of a judges config (its `judges.model` kwargs)."""
  return judge_lib.AudioJudge(sample_rate=config.data.sample_rate,
                              **config.judges.model)
