"""The unconditional WaveGAN stage: WGAN-GP on slices of an audio folder.

As the official WaveGAN: z ~ U[-1, 1]^latent_dim, `d_steps` critic updates
per generator update, each on a fresh real batch of `train.batch_size` (the
paper's 64), and the generator update on a batch of that size too; Adam with
the config's (1e-4, 0.5, 0.9) for both networks. One train step therefore
reads d_steps * batch_size real examples.

With `train.ema_decay` set, an exponential moving average of the generator's
weights is kept alongside them; the export (what evaluation and generation
read) and the previews are then the averaged generator.
"""

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections

from wavegan_jax import losses
from wavegan_jax.models import wavegan as wavegan_lib
from wavegan_jax.training import gan
from wavegan_jax.training import stage_runner
from wavegan_jax.training import state as state_lib

STAGE = "wavegan"


def models(config: ml_collections.ConfigDict):
  """(generator, discriminator) of the config."""
  slice_len = config.data.builder_kwargs.slice_len
  channels = config.data.builder_kwargs.num_channels
  generator = wavegan_lib.WaveGANGenerator(
      slice_len=slice_len, num_channels=channels, **config.wavegan.model)
  discriminator = wavegan_lib.WaveGANDiscriminator(
      slice_len=slice_len, **config.wavegan.discriminator)
  return generator, discriminator


def sample_latents(rng, batch_size, latent_dim):
  return jax.random.uniform(rng, (batch_size, latent_dim), jnp.float32,
                            -1.0, 1.0)


def _step(state, batch, rng, *, generator, discriminator, g_optimizer,
          d_optimizer, latent_dim, kind, d_steps, gp_weight, gp_examples,
          ema_decay):
  real = batch["audio"]
  d_rng, g_rng, g_shuffle_rng = jax.random.split(rng, 3)

  def critic(d_params, waveform, condition, shuffle_rng):
    del condition  # Unconditional.
    return discriminator.apply({"params": d_params}, waveform,
                               rng=shuffle_rng)

  def fake_fn(fake_rng, start, size):
    del start
    z = sample_latents(fake_rng, size, latent_dim)
    return generator.apply({"params": state["params"]["generator"]}, z)

  state, d_metrics = gan.discriminator_updates(
      state, critic, real, None, fake_fn, d_rng, num_updates=d_steps,
      kind=kind, gp_weight=gp_weight, optimizer=d_optimizer,
      gp_examples=gp_examples)

  z = sample_latents(g_rng, real.shape[0] // d_steps, latent_dim)
  d_params = state["params"]["discriminator"]

  def g_loss_fn(g_params):
    fake = generator.apply({"params": g_params}, z)
    return losses.generator_loss(
        kind, critic(d_params, fake, None, g_shuffle_rng))

  g_loss, grads = jax.value_and_grad(g_loss_fn)(state["params"]["generator"])
  state = state_lib.apply_gradients(
      state, "generator", grads, g_optimizer,
      ema_decay=None if ema_decay is None else state_lib.ema_decay_at(
          ema_decay, state["step"]))
  state = state_lib.increment_step(state)
  g_grad_norm = state_lib.global_norm(grads)
  metrics = {"loss": d_metrics["d_loss"], "g_loss": g_loss,
             "g_grad_norm": g_grad_norm, **d_metrics,
             "learning_rate": state_lib.learning_rate_of(
                 state["opt_state"]["generator"])}
  metrics["is_finite"] = jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(v)) for v in metrics.values()]))
  return state, metrics


def gp_examples_from(adversarial, batch_size: int):
  """The critic update's gradient-penalty subset size; None for all.

  `adversarial.gp_examples` 0 (or absent) means the whole per-update batch.

  Raises:
    UserFacingError: unless it is an int in [0, batch_size].
  """
  count = adversarial.get("gp_examples", 0)
  if (isinstance(count, bool) or not isinstance(count, int)
      or not 0 <= count <= batch_size):
    raise stage_runner.UserFacingError(
        f"wavegan.adversarial.gp_examples must be an int in [0, "
        f"{batch_size}] (train.batch_size; 0: all), got {count!r}")
  return None if count in (0, batch_size) else count


def make_spec(config: ml_collections.ConfigDict, *, manual_dir=None,
              data_dir=None) -> stage_runner.StageSpec:
  """The StageSpec of the unconditional WaveGAN."""
  train_config = stage_runner.stage_train_config(config, STAGE)
  generator, discriminator = models(config)
  g_optimizer = stage_runner.optimizer_from(train_config)
  d_optimizer = stage_runner.optimizer_from(train_config, prefix="d_")
  latent_dim = config.wavegan.latent_dim
  slice_len = config.data.builder_kwargs.slice_len
  channels = config.data.builder_kwargs.num_channels
  seed = config.seed
  ema_decay = stage_runner.ema_decay_from(train_config)

  def init_fn():
    g_rng, d_rng = jax.random.split(jax.random.PRNGKey(seed))
    g_params = generator.init(g_rng, jnp.zeros((1, latent_dim)))["params"]
    d_params = discriminator.init(
        d_rng, jnp.zeros((1, slice_len, channels)))["params"]
    return state_lib.create_train_state(
        {"generator": g_params, "discriminator": d_params},
        {"generator": g_optimizer, "discriminator": d_optimizer},
        ema_decay=ema_decay, ema_models=("generator",))

  adversarial = config.wavegan.adversarial
  if not isinstance(adversarial.d_steps, int) or adversarial.d_steps < 1:
    raise stage_runner.UserFacingError(
        f"wavegan.adversarial.d_steps must be a positive int, got "
        f"{adversarial.d_steps!r}")
  gp_examples = gp_examples_from(adversarial, train_config.batch_size)
  step_fn = functools.partial(
      _step, generator=generator, discriminator=discriminator,
      g_optimizer=g_optimizer, d_optimizer=d_optimizer,
      latent_dim=latent_dim, kind=adversarial.loss,
      d_steps=adversarial.d_steps, gp_weight=adversarial.gp_weight,
      gp_examples=gp_examples, ema_decay=ema_decay)
  folder_manual_dir = (None if manual_dir is None else
                       os.path.join(manual_dir, config.data.folder))
  make_batches = stage_runner.host_batches(
      config, split="train",
      global_batch_size=train_config.batch_size * adversarial.d_steps,
      seed=seed, manual_dir=folder_manual_dir, data_dir=data_dir,
      fields=("audio",))
  preview_z = sample_latents(jax.random.PRNGKey(seed + 1000), 4, latent_dim)
  sample_rate = config.data.builder_kwargs.sample_rate

  @jax.jit
  def preview(g_params):
    return generator.apply({"params": g_params}, preview_z)

  def summary_fn(state, step):
    del step
    audio = preview(state_lib.averaged_params(state, "generator"))
    return {"audio": {"generated": audio},
            "images": {"generated_spectrogram":
                       stage_runner.spectrogram_images(audio[..., 0])},
            "sample_rate": sample_rate}

  return stage_runner.StageSpec(
      name=STAGE, train_config=train_config, init_fn=init_fn,
      step_fn=step_fn, make_batches=make_batches,
      export_fn=lambda s: {
          "generator": state_lib.averaged_params(s, "generator")},
      summary_fn=summary_fn, metrics_to_show=("d_loss", "g_loss"),
      seed=seed)
