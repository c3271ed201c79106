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


def pack_examples(waveforms, pack: int):
  """[B, T, C] -> [B / pack, T, pack * C]: PacGAN's packing (Lin et al., 2018).

  Pack j stacks examples j * pack ... j * pack + pack - 1 along channels, so
  the critic scores `pack` clips of one kind at once and can punish a
  generator whose clips are too alike. pack 1 returns the input.
  """
  if pack == 1:
    return waveforms
  batch, length, channels = waveforms.shape
  return (waveforms.reshape(batch // pack, pack, length, channels)
          .transpose(0, 2, 1, 3).reshape(batch // pack, length,
                                         pack * channels))


def _critic_fn(discriminator):
  """critic(d_params, waveform, condition, rng) for `gan`'s updates."""
  def critic(d_params, waveform, condition, shuffle_rng):
    del condition  # Unconditional.
    return discriminator.apply({"params": d_params}, waveform,
                               rng=shuffle_rng)
  return critic


def _finish_step(state, g_loss, g_grads, d_metrics, *, g_optimizer,
                 ema_decay):
  """Applies the generator's gradients, bumps the step, gathers metrics."""
  state = state_lib.apply_gradients(
      state, "generator", g_grads, g_optimizer,
      ema_decay=None if ema_decay is None else state_lib.ema_decay_at(
          ema_decay, state["step"]))
  state = state_lib.increment_step(state)
  metrics = {"loss": d_metrics["d_loss"], "g_loss": g_loss,
             "g_grad_norm": state_lib.global_norm(g_grads), **d_metrics,
             "learning_rate": state_lib.learning_rate_of(
                 state["opt_state"]["generator"])}
  metrics["is_finite"] = jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(v)) for v in metrics.values()]))
  return state, metrics


def _step(state, batch, rng, *, generator, discriminator, g_optimizer,
          d_optimizer, latent_dim, kind, d_steps, gp_weight, gp_examples,
          ema_decay, pack=1):
  """d_steps critic updates, then a generator update against the new critic.

  With pack > 1 the critic (and its gradient penalty) sees packs of `pack`
  real or generated clips (`pack_examples`); every update still reads
  train.batch_size clips.
  """
  real = pack_examples(batch["audio"], pack)
  d_rng, g_rng, g_shuffle_rng = jax.random.split(rng, 3)
  critic = _critic_fn(discriminator)

  def fake_fn(fake_rng, start, size):
    del start
    z = sample_latents(fake_rng, size * pack, latent_dim)
    return pack_examples(
        generator.apply({"params": state["params"]["generator"]}, z), pack)

  state, d_metrics = gan.discriminator_updates(
      state, critic, real, None, fake_fn, d_rng, num_updates=d_steps,
      kind=kind, gp_weight=gp_weight, optimizer=d_optimizer,
      gp_examples=gp_examples)

  z = sample_latents(g_rng, batch["audio"].shape[0] // d_steps, latent_dim)
  d_params = state["params"]["discriminator"]

  def g_loss_fn(g_params):
    fake = pack_examples(generator.apply({"params": g_params}, z), pack)
    return losses.generator_loss(
        kind, critic(d_params, fake, None, g_shuffle_rng))

  g_loss, g_grads = jax.value_and_grad(g_loss_fn)(
      state["params"]["generator"])
  return _finish_step(state, g_loss, g_grads, d_metrics,
                      g_optimizer=g_optimizer, ema_decay=ema_decay)


def _simultaneous_step(state, batch, rng, *, generator, discriminator,
                       g_optimizer, d_optimizer, latent_dim, gp_weight,
                       gp_examples, ema_decay, pack=1):
  """One WGAN-GP critic update and one generator update from the same state.

  Both networks' gradients come from one backward pass of the critic loss
  E[D(G(z))] - E[D(real)] + lambda * penalty: the generator's loss
  -E[D(G(z))] is the negative of the only term that reaches its weights
  (the penalty's fakes are stop-gradient), so its gradient is the negative
  of the critic loss's. That saves the alternating step's second generator
  forward and the critic's forward and backward on those fakes; the
  generator then descends against the critic before (not after) this
  step's critic update.
  """
  real = pack_examples(batch["audio"], pack)
  z_rng, d_rng = jax.random.split(rng)
  critic = _critic_fn(discriminator)
  z = sample_latents(z_rng, batch["audio"].shape[0], latent_dim)

  def loss_fn(params):
    fake = pack_examples(generator.apply({"params": params["generator"]}, z),
                         pack)
    return gan.critic_loss(critic, params["discriminator"], real, fake, None,
                           d_rng, kind="wgan-gp", gp_weight=gp_weight,
                           gp_examples=gp_examples)

  (d_loss, d_metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state["params"])
  d_grads = grads["discriminator"]
  g_grads = jax.tree.map(jnp.negative, grads["generator"])
  state = state_lib.apply_gradients(state, "discriminator", d_grads,
                                    d_optimizer)
  d_metrics.update(d_loss=d_loss, d_grad_norm=state_lib.global_norm(d_grads))
  g_loss = losses.wgan_generator_loss(d_metrics["d_fake"])
  return _finish_step(state, g_loss, g_grads, d_metrics,
                      g_optimizer=g_optimizer, ema_decay=ema_decay)


def pack_from(adversarial, batch_size: int) -> int:
  """`adversarial.pack` (1 or absent: no packing), checked.

  Raises:
    UserFacingError: unless it is an int >= 1 that divides batch_size.
  """
  pack = adversarial.get("pack", 1)
  if (isinstance(pack, bool) or not isinstance(pack, int) or pack < 1
      or batch_size % pack):
    raise stage_runner.UserFacingError(
        f"wavegan.adversarial.pack must be an int >= 1 that divides "
        f"train.batch_size ({batch_size}), got {pack!r}")
  return pack


def gp_examples_from(adversarial, batch_size: int):
  """The critic update's gradient-penalty subset size; None for all.

  `adversarial.gp_examples` 0 (or absent) means the whole per-update batch
  of the critic's inputs (packs, under `adversarial.pack`).

  Raises:
    UserFacingError: unless it is an int in [0, batch_size].
  """
  count = adversarial.get("gp_examples", 0)
  if (isinstance(count, bool) or not isinstance(count, int)
      or not 0 <= count <= batch_size):
    raise stage_runner.UserFacingError(
        f"wavegan.adversarial.gp_examples must be an int in [0, "
        f"{batch_size}] (train.batch_size / pack; 0: all), got {count!r}")
  return None if count in (0, batch_size) else count


def check_minibatch_std_group(discriminator, batch_size: int,
                              gp_examples) -> None:
  """Checks `wavegan.discriminator.minibatch_std_group` against the batches.

  The critic scores batches of batch_size (train.batch_size / pack) and,
  under a penalty subset, of gp_examples; each must split into groups of
  min(group, batch).

  Raises:
    UserFacingError: for a group that is not an int >= 0, or a batch it
      does not divide.
  """
  group = discriminator.get("minibatch_std_group", 0)
  if isinstance(group, bool) or not isinstance(group, int) or group < 0:
    raise stage_runner.UserFacingError(
        f"wavegan.discriminator.minibatch_std_group must be an int >= 0 "
        f"(0: off), got {group!r}")
  for batch in (batch_size, gp_examples):
    if group and batch and batch % min(group, batch):
      raise stage_runner.UserFacingError(
          f"wavegan.discriminator.minibatch_std_group={group} does not "
          f"divide the critic's batch of {batch} (train.batch_size / pack "
          f"= {batch_size}, gp_examples {gp_examples or 'all'})")


def simultaneous_from(adversarial) -> bool:
  """Whether `adversarial.simultaneous` asks for `_simultaneous_step`.

  Raises:
    UserFacingError: with a loss other than 'wgan-gp' or d_steps other
      than 1 (the shared backward pass needs both).
  """
  simultaneous = bool(adversarial.get("simultaneous", False))
  if simultaneous and (adversarial.loss != "wgan-gp"
                       or adversarial.d_steps != 1):
    raise stage_runner.UserFacingError(
        f"wavegan.adversarial.simultaneous needs loss='wgan-gp' and "
        f"d_steps=1 (one backward pass serves both networks only then), got "
        f"loss={adversarial.loss!r}, d_steps={adversarial.d_steps!r}")
  return simultaneous


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

  adversarial = config.wavegan.adversarial
  if not isinstance(adversarial.d_steps, int) or adversarial.d_steps < 1:
    raise stage_runner.UserFacingError(
        f"wavegan.adversarial.d_steps must be a positive int, got "
        f"{adversarial.d_steps!r}")
  pack = pack_from(adversarial, train_config.batch_size)
  critic_batch = train_config.batch_size // pack
  gp_examples = gp_examples_from(adversarial, critic_batch)
  check_minibatch_std_group(config.wavegan.discriminator, critic_batch,
                            gp_examples)

  def init_fn():
    g_rng, d_rng = jax.random.split(jax.random.PRNGKey(seed))
    g_params = generator.init(g_rng, jnp.zeros((1, latent_dim)))["params"]
    d_params = discriminator.init(
        d_rng, jnp.zeros((1, slice_len, channels * pack)))["params"]
    return state_lib.create_train_state(
        {"generator": g_params, "discriminator": d_params},
        {"generator": g_optimizer, "discriminator": d_optimizer},
        ema_decay=ema_decay, ema_models=("generator",))

  common = dict(generator=generator, discriminator=discriminator,
                g_optimizer=g_optimizer, d_optimizer=d_optimizer,
                latent_dim=latent_dim, gp_weight=adversarial.gp_weight,
                gp_examples=gp_examples, ema_decay=ema_decay, pack=pack)
  if simultaneous_from(adversarial):
    step_fn = functools.partial(_simultaneous_step, **common)
  else:
    step_fn = functools.partial(_step, kind=adversarial.loss,
                                d_steps=adversarial.d_steps, **common)
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
