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
import numpy as np

from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax import losses
from wavegan_jax.data import batches
from wavegan_jax.data import pipeline
from wavegan_jax.models import specgan as specgan_lib
from wavegan_jax.models import vocoder_discriminators
from wavegan_jax.training import gan
from wavegan_jax.training import optimizers as optimizers_lib
from wavegan_jax.training import stage_runner
from wavegan_jax.training import state as state_lib
from wavegan_jax.training import summaries
from wavegan_jax.training import wavegan_options

STAGE = "wavegan"


def _generate(generator, g_params, z, spectrogram):
  """The generator's output as the critic scores it.

  For SpecGAN that is the normalised spectrogram; its audio (what export,
  evaluation and previews read) is the module's default output. WaveGAN's
  is its output before the post-filters (`dc_block_len`, `end_fade_len`).
  """
  if spectrogram:
    return generator.apply({"params": g_params}, z, spectrogram=True)
  return generator.apply({"params": g_params}, z, post_filter=False)


def _critic_real(generator, g_params, audio, spectrogram):
  """Real clips as the critic scores them (SpecGAN: normalised spectrograms
  under the training set's moments, which the generator's params hold)."""
  if not spectrogram:
    return audio
  return generator.apply({"params": g_params}, audio,
                         method=specgan_lib.SpecGANGenerator
                         .normalized_spectrogram)


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
          ema_decay, pack=1, mode_seeking_weight=0.0,
          mode_seeking_features=None, loudness_weight=0.0,
          loudness_frame_length=256, spectrogram=False, spectral_critic=None):
  """d_steps critic updates, then a generator update against the new critic.

  With pack > 1 the critic (and its gradient penalty) sees packs of `pack`
  real or generated clips (`pack_examples`); every update still reads
  train.batch_size clips. With mode_seeking_weight > 0 the generator's loss
  adds that times `losses.mode_seeking_loss` of its batch, on
  mode_seeking_features(outputs) when that is given; with loudness_weight
  > 0 it adds that times `losses.loudness_distance` between its clips and
  the real batch. With spectrogram (SpecGAN) the critic scores
  spectrograms of real and generated clips. With spectral_critic
  (`spectral_critic_from`) a second, least-squares patch critic
  (models/vocoder_discriminators.py) adds its generator terms, and is then
  updated on this step's generated clips (its generator terms read it
  before that update, as the simultaneous step does its critic).
  """
  g_params_now = state["params"]["generator"]
  real = pack_examples(_critic_real(generator, g_params_now, batch["audio"],
                                    spectrogram), pack)
  d_rng, g_rng, g_shuffle_rng = jax.random.split(rng, 3)
  critic = _critic_fn(discriminator)

  def fake_fn(fake_rng, start, size):
    del start
    z = inference.sample_latents(fake_rng, size * pack, latent_dim)
    return pack_examples(_generate(generator, g_params_now, z, spectrogram),
                         pack)

  state, d_metrics = gan.discriminator_updates(
      state, critic, real, None, fake_fn, d_rng, num_updates=d_steps,
      kind=kind, gp_weight=gp_weight, optimizer=d_optimizer,
      gp_examples=gp_examples)

  z = inference.sample_latents(g_rng, batch["audio"].shape[0] // d_steps,
                               latent_dim)
  d_params = state["params"]["discriminator"]

  real_clips = batch["audio"][:z.shape[0]]

  def g_loss_fn(g_params):
    outputs = _generate(generator, g_params, z, spectrogram)
    adversarial_loss = losses.generator_loss(
        kind, critic(d_params, pack_examples(outputs, pack), None,
                     g_shuffle_rng))
    extra, extra_terms = _extra_generator_terms(
        outputs, z, batch["audio"], mode_seeking_weight=mode_seeking_weight,
        mode_seeking_features=mode_seeking_features,
        loudness_weight=loudness_weight,
        loudness_frame_length=loudness_frame_length)
    if spectral_critic is not None:
      spectral, spectral_terms = _spectral_generator_terms(
          spectral_critic, state["params"]["spectral_discriminator"],
          outputs, real_clips)
      extra += spectral
      extra_terms = {**extra_terms, **spectral_terms}
    return (adversarial_loss + extra, (adversarial_loss, extra_terms,
                                        outputs))

  (_, (g_loss, extra_terms, outputs)), g_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(g_params_now)
  if spectral_critic is not None:
    state, spectral_metrics = gan.discriminator_update(
        state, _spectral_critic_fn(spectral_critic["module"]), real_clips,
        outputs, None, g_shuffle_rng, kind="lsgan", gp_weight=0.0,
        optimizer=spectral_critic["optimizer"],
        name="spectral_discriminator")
    extra_terms = {**extra_terms, **{f"spectral_{k}": v
                                     for k, v in spectral_metrics.items()}}
  return _finish_step(state, g_loss, g_grads, {**d_metrics, **extra_terms},
                      g_optimizer=g_optimizer, ema_decay=ema_decay)


def _spectral_critic_fn(module):
  """critic(d_params, waveform, condition, rng) of the patch critic."""
  def critic(d_params, waveform, condition, rng):
    del condition, rng  # Unconditional, no phase shuffle.
    return module.apply({"params": d_params}, waveform)
  return critic


def _spectral_generator_terms(spectral_critic, d_params, outputs, real):
  """(weighted LSGAN + feature-matching terms of the patch critic, metrics)."""
  module = spectral_critic["module"]
  fake_logits, fake_features = module.apply({"params": d_params}, outputs,
                                            return_features=True)
  _, real_features = module.apply({"params": d_params}, real,
                                  return_features=True)
  adversarial = losses.generator_loss("lsgan", fake_logits)
  matching = losses.feature_matching_loss(real_features, fake_features)
  total = (spectral_critic["weight"] * adversarial
           + spectral_critic["feature_matching"] * matching)
  return total, {"spectral_adversarial": adversarial,
                 "spectral_feature_matching": matching}


def spectral_critic_from(config: ml_collections.ConfigDict, optimizer):
  """The patch critic's settings for `_step`, or None when it is off.

  `wavegan.spectral_critic`: weight (its LSGAN term) and feature_matching
  (its feature-matching term), both 0 or absent for off; the other keys
  are `VocoderDiscriminator` attributes. It reads waveforms, so not with
  SpecGAN, and needs the alternating step.

  Raises:
    UserFacingError: for a bad weight or a setting it cannot run with.
  """
  settings = dict(config.wavegan.get("spectral_critic", None) or {})
  weights = {}
  for key in ("weight", "feature_matching"):
    value = settings.pop(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        np.isfinite(value) and value >= 0):
      raise errors.UserFacingError(
          f"wavegan.spectral_critic.{key} must be a finite number >= 0, got "
          f"{value!r}")
    weights[key] = float(value)
  if not any(weights.values()):
    return None
  if inference.representation_of(config) != "waveform":
    raise errors.UserFacingError(
        "wavegan.spectral_critic reads waveforms; the spectrogram "
        "representation (SpecGAN) needs its weights at 0")
  if wavegan_options.simultaneous_from(config.wavegan.adversarial):
    raise errors.UserFacingError(
        "wavegan.spectral_critic needs the alternating step "
        "(wavegan.adversarial.simultaneous=False)")
  return {"module": vocoder_discriminators.VocoderDiscriminator(**settings),
          "optimizer": optimizer, **weights}


def _extra_generator_terms(outputs, z, real_audio, *, mode_seeking_weight,
                           mode_seeking_features, loudness_weight,
                           loudness_frame_length):
  """The generator's terms beside the adversarial one: (their weighted sum,
  their metrics); (0, {}) when both weights are 0.

  Mode seeking measures its distance between mode_seeking_features(outputs)
  when that is given, else between the outputs themselves. A term whose
  weight is 0 is not traced, so with both off the step is the paper's.
  """
  total, metrics = 0.0, {}
  if mode_seeking_weight:
    features = mode_seeking_features or (lambda clips: clips)
    loss, ratio = losses.mode_seeking_loss(features(outputs), z)
    total += mode_seeking_weight * loss
    metrics.update(mode_seeking_loss=loss, mode_seeking_ratio=ratio)
  if loudness_weight:
    distance = losses.loudness_distance(outputs, real_audio,
                                        loudness_frame_length)
    total += loudness_weight * distance
    metrics.update(loudness_distance=distance)
  return total, metrics


def _simultaneous_step(state, batch, rng, *, generator, discriminator,
                       g_optimizer, d_optimizer, latent_dim, gp_weight,
                       gp_examples, ema_decay, pack=1,
                       mode_seeking_weight=0.0, mode_seeking_features=None,
                       loudness_weight=0.0, loudness_frame_length=256,
                       spectrogram=False):
  """One WGAN-GP critic update and one generator update from the same state.

  Both networks' gradients come from one backward pass of the critic loss
  E[D(G(z))] - E[D(real)] + lambda * penalty: the generator's loss
  -E[D(G(z))] is the negative of the only term that reaches its weights
  (the penalty's fakes are stop-gradient), so its gradient is the negative
  of the critic loss's. That saves the alternating step's second generator
  forward and the critic's forward and backward on those fakes; the
  generator then descends against the critic before (not after) this
  step's critic update. A mode-seeking term (`_step`) enters the backward
  pass with the opposite sign, which leaves the critic's gradient alone and
  adds its own to the generator's.
  """
  real = pack_examples(_critic_real(generator, state["params"]["generator"],
                                    batch["audio"], spectrogram), pack)
  z_rng, d_rng = jax.random.split(rng)
  critic = _critic_fn(discriminator)
  z = inference.sample_latents(z_rng, batch["audio"].shape[0], latent_dim)

  def loss_fn(params):
    outputs = _generate(generator, params["generator"], z, spectrogram)
    d_loss, d_metrics = gan.critic_loss(
        critic, params["discriminator"], real, pack_examples(outputs, pack),
        None, d_rng, kind="wgan-gp", gp_weight=gp_weight,
        gp_examples=gp_examples)
    extra, extra_terms = _extra_generator_terms(
        outputs, z, batch["audio"], mode_seeking_weight=mode_seeking_weight,
        mode_seeking_features=mode_seeking_features,
        loudness_weight=loudness_weight,
        loudness_frame_length=loudness_frame_length)
    return d_loss - extra, (d_loss, {**d_metrics, **extra_terms})

  (_, (d_loss, d_metrics)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state["params"])
  d_grads = grads["discriminator"]
  g_grads = jax.tree.map(jnp.negative, grads["generator"])
  state = state_lib.apply_gradients(state, "discriminator", d_grads,
                                    d_optimizer)
  d_metrics.update(d_loss=d_loss, d_grad_norm=state_lib.global_norm(d_grads))
  g_loss = losses.wgan_generator_loss(d_metrics["d_fake"])
  return _finish_step(state, g_loss, g_grads, d_metrics,
                      g_optimizer=g_optimizer, ema_decay=ema_decay)


def spectrogram_moments(config: ml_collections.ConfigDict, *, manual_dir,
                        data_dir):
  """SpecGAN's per-bin (mean, std) of log magnitudes over the train split.

  Raises:
    UserFacingError: when the split holds no clips.
  """
  dataset = pipeline.whole_split(
      config.data.name, "train", data_dir=data_dir, manual_dir=manual_dir,
      builder_kwargs=dict(config.data.builder_kwargs))
  slice_len = config.data.builder_kwargs.slice_len
  log_magnitude = jax.jit(functools.partial(specgan_lib.log_magnitude,
                                            slice_len=slice_len))
  try:
    return specgan_lib.moments(
        np.asarray(log_magnitude(batch["audio"]))
        for batch in dataset.as_numpy_iterator())
  except ValueError as error:
    raise errors.UserFacingError(
        f"SpecGAN's spectrogram moments: the train split of "
        f"{config.data.folder!r} gave no clips ({error})") from error


def make_spec(config: ml_collections.ConfigDict, *, manual_dir=None,
              data_dir=None) -> stage_runner.StageSpec:
  """The StageSpec of the unconditional WaveGAN."""
  train_config = optimizers_lib.stage_train_config(config, STAGE)
  try:
    spectrogram = inference.representation_of(config) == "spectrogram"
  except ValueError as error:
    raise errors.UserFacingError(str(error)) from error
  generator, discriminator = inference.wavegan_models(config)
  g_optimizer = optimizers_lib.optimizer_from(train_config)
  d_optimizer = optimizers_lib.optimizer_from(train_config, prefix="d_")
  latent_dim = config.wavegan.latent_dim
  seed = config.seed
  ema_decay = optimizers_lib.ema_decay_from(train_config)

  adversarial = config.wavegan.adversarial
  if not isinstance(adversarial.d_steps, int) or adversarial.d_steps < 1:
    raise errors.UserFacingError(
        f"wavegan.adversarial.d_steps must be a positive int, got "
        f"{adversarial.d_steps!r}")
  pack = wavegan_options.pack_from(adversarial, train_config.batch_size)
  critic_batch = train_config.batch_size // pack
  gp_examples = wavegan_options.gp_examples_from(adversarial, critic_batch)
  wavegan_options.check_minibatch_std_group(config.wavegan.discriminator,
                                            critic_batch, gp_examples)
  if spectrogram and pack != 1:
    raise errors.UserFacingError(
        f"wavegan.adversarial.pack={pack} packs waveforms along channels; "
        f"the spectrogram representation (SpecGAN) needs pack=1")
  folder_manual_dir = (None if manual_dir is None else
                       os.path.join(manual_dir, config.data.folder))
  # The training set's per-bin moments, read once and only where a state is
  # made (a resumed run restores its own with the weights). init_fn is
  # traced, so they are computed eagerly as constants.
  @functools.cache
  def moments():
    with jax.ensure_compile_time_eval():
      return spectrogram_moments(config, manual_dir=folder_manual_dir,
                                 data_dir=data_dir)

  spectral_critic = spectral_critic_from(config, d_optimizer)

  def init_fn():
    g_rng, d_rng = jax.random.split(jax.random.PRNGKey(seed))
    g_params = generator.init(g_rng, jnp.zeros((1, latent_dim)))["params"]
    if spectrogram:
      mean, std = moments()
      g_params = {**g_params, "log_magnitude_mean": jnp.asarray(mean),
                  "log_magnitude_std": jnp.asarray(std)}
    d_params = discriminator.init(
        d_rng, jnp.zeros(inference.critic_input_shape(config, pack)))["params"]
    params = {"generator": g_params, "discriminator": d_params}
    optimizers = {"generator": g_optimizer, "discriminator": d_optimizer}
    if spectral_critic is not None:
      params["spectral_discriminator"] = spectral_critic["module"].init(
          jax.random.fold_in(d_rng, 1),
          jnp.zeros(inference.critic_input_shape(config)))["params"]
      optimizers["spectral_discriminator"] = d_optimizer
    return state_lib.create_train_state(
        params, optimizers, ema_decay=ema_decay, ema_models=("generator",))

  representation = inference.representation_of(config)
  extra_terms = dict(
      mode_seeking_weight=wavegan_options.mode_seeking_weight_from(
          adversarial, train_config.batch_size),
      mode_seeking_features=wavegan_options.mode_seeking_features_from(
          adversarial, representation, config.data.builder_kwargs.sample_rate),
      **wavegan_options.loudness_from(adversarial, representation,
                                      config.data.builder_kwargs))
  common = dict(generator=generator, discriminator=discriminator,
                g_optimizer=g_optimizer, d_optimizer=d_optimizer,
                latent_dim=latent_dim, gp_weight=adversarial.gp_weight,
                gp_examples=gp_examples, ema_decay=ema_decay, pack=pack,
                spectrogram=spectrogram, **extra_terms)
  if wavegan_options.simultaneous_from(adversarial):
    step_fn = functools.partial(_simultaneous_step, **common)
  else:
    step_fn = functools.partial(_step, kind=adversarial.loss,
                                d_steps=adversarial.d_steps,
                                spectral_critic=spectral_critic, **common)
  loudness_start = wavegan_options.loudness_start_step_from(
      adversarial, extra_terms["loudness_weight"], train_config.num_steps)
  warm_up_step_fn = (functools.partial(step_fn, loudness_weight=0.0)
                     if loudness_start else None)
  make_batches = batches.host_batches(
      config, split="train",
      global_batch_size=train_config.batch_size * adversarial.d_steps,
      seed=seed, manual_dir=folder_manual_dir, data_dir=data_dir,
      fields=("audio",))
  preview_z = inference.sample_latents(jax.random.PRNGKey(seed + 1000), 4,
                                       latent_dim)
  sample_rate = config.data.builder_kwargs.sample_rate

  @jax.jit
  def preview(g_params):
    return generator.apply({"params": g_params}, preview_z)

  def summary_fn(state, step):
    del step
    audio = preview(state_lib.averaged_params(state, "generator"))
    return {"audio": {"generated": audio},
            "images": {"generated_spectrogram":
                       summaries.spectrogram_images(audio[..., 0])},
            "sample_rate": sample_rate}

  return stage_runner.StageSpec(
      name=STAGE, train_config=train_config, init_fn=init_fn,
      step_fn=step_fn, make_batches=make_batches,
      export_fn=lambda s: {
          "generator": state_lib.averaged_params(s, "generator")},
      summary_fn=summary_fn, metrics_to_show=("d_loss", "g_loss"),
      seed=seed, warm_up_steps=loudness_start,
      warm_up_step_fn=warm_up_step_fn)
