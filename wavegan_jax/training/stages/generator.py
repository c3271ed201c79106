"""Stage 3: the generator (and its discriminator) on the frozen encoders.

The acoustic and visual encoders are restored params-only from the earlier
stages' exports (<workdir>/acoustic/export, <workdir>/visual/export); a
mismatching export fails naming the parameter and both shapes.
  strategy 'separate': the encoders are constants closed over by the step,
    outside the train state and the optimizers.
  strategy 'joint' (experiments/av_digits.py's default): they are models
    of the train state ('acoustic', 'visual'), fine-tuned by the
    generator's objective with their own Adam (learning rate: the
    generator's times `generator.train.encoder_learning_rate_scale`).
    `generator.joint_frozen` keeps chosen encoder parameters as exported
    ('visual/conv_layers' holds every visual CNN level): no gradient is
    computed for them and their updates are zero.
Generator objective: `losses.weighted_sum` of stft (multi-resolution STFT),
waveform_mse, adversarial, feature_matching, weight_decay and kl. With
`generator.posterior.enabled` the generator's training noise is drawn from
q(z | target) (models/posterior.py, a model of the train state trained with
the generator's optimizer, not exported) and `kl` is KL(q || N(0, 1));
generation still draws z from N(0, 1). The critic
(`generator.discriminator.kind`: WaveGAN's, which also sees the visual
context by projection; 'stft'; or 'vocoder', the patch critics of
models/vocoder_discriminators.py) is neither run nor trained with both
critic weights 0, nor before `generator.adversarial.start_step` (a
reconstruction-only warm-up). `generator.
visual_noise_std` adds Gaussian noise to the visual context the generator
sees in training (not in evaluation or generation); `visual.augment`
re-renders a share of the training clips' videos (data/augment.py). With
`train.ema_decay` set, exponential moving averages of the trained models
are kept, and the export and previews hold them. With `visual.frame_budget`
set, batches whose distinct frames fit run a step whose visual CNN computes
each distinct frame once (models/visual.py), the others the full step.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax import losses
from wavegan_jax.data import batches
from wavegan_jax.data import pipeline
from wavegan_jax.models import posterior as posterior_lib
from wavegan_jax.training import gan
from wavegan_jax.training import optimizers as optimizers_lib
from wavegan_jax.training import stage_runner
from wavegan_jax.training import state as state_lib
from wavegan_jax.training import summaries
from wavegan_jax.training.stages import autoencoders

STAGE = "generator"
def joint_frozen_mask(config, encoder_params) -> dict:
  """{encoder: pytree of bools, True where `generator.joint_frozen` holds}.

  Each entry is '<encoder>/<prefix>' and freezes the encoder's top-level
  parameter groups whose names start with the prefix.

  Raises:
    UserFacingError: for an entry naming no encoder, or matching nothing.
  """
  entries = tuple(config.generator.get("joint_frozen", ()) or ())
  frozen = {name: set() for name in inference.ENCODERS}
  for entry in entries:
    encoder, _, prefix = str(entry).partition("/")
    groups = sorted(encoder_params.get(encoder, {}))
    matched = [g for g in groups if prefix and g.startswith(prefix)]
    if encoder not in inference.ENCODERS or not matched:
      raise errors.UserFacingError(
          f"generator.joint_frozen entry {entry!r} matches no encoder "
          f"parameters; entries are '<encoder>/<prefix>' with encoder one "
          f"of {inference.ENCODERS}"
          + (f" and prefix starting one of {groups}" if groups else ""))
    frozen[encoder].update(matched)
  return {name: {group: jax.tree.map(lambda _, f=group in frozen[name]: f,
                                     params)
                 for group, params in encoder_params[name].items()}
          for name in inference.ENCODERS}


def encoder_train_config(train_config):
  """The train config of the encoders fine-tuned under 'joint'.

  Their learning rate (and schedule) is the generator's times
  `encoder_learning_rate_scale` (1 when absent): the encoders start trained,
  the generator from scratch.

  Raises:
    UserFacingError: for a scale that is not a positive number.
  """
  scale = train_config.get("encoder_learning_rate_scale", 1.0)
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
      scale > 0 and np.isfinite(scale)):
    raise errors.UserFacingError(
        "generator.train.encoder_learning_rate_scale must be a positive "
        f"number, got {scale!r}")
  encoder_train = ml_collections.ConfigDict(train_config.to_dict())
  encoder_train.learning_rate = float(train_config.learning_rate) * scale
  return encoder_train


def uses_critic(config: ml_collections.ConfigDict) -> bool:
  """Whether either critic weight is on (else the critic never runs)."""
  weights = config.generator.loss_weights
  return bool(weights.get("adversarial", 0) or weights.get(
      "feature_matching", 0))


def posterior_model(config: ml_collections.ConfigDict):
  """The PosteriorEncoder of `generator.posterior`, or None when off.

  Raises:
    UserFacingError: for the posterior without generator noise.
  """
  settings = dict(config.generator.get("posterior") or {})
  if not settings.pop("enabled", False):
    return None
  noise_features = config.generator.model.get("noise_features", 0)
  if not noise_features:
    raise errors.UserFacingError(
        "generator.posterior.enabled needs generator.model.noise_features > "
        "0 (the posterior is over that noise); got noise_features="
        f"{noise_features}")
  return posterior_lib.PosteriorEncoder(latent_dim=noise_features, **settings)


def _freeze(params, mask):
  """`params` with the gradient stopped where `mask` is True."""
  return jax.tree.map(
      lambda p, frozen: jax.lax.stop_gradient(p) if frozen else p,
      params, mask)


def _step(state, batch, rng, *, config, modules, frozen_encoders,
          optimizers, ema_decay, frozen_mask, critic_on=True):
  """One step of the generator stage: critic updates, then the generator's.

  1. With the critic on (`critic_on` and a critic weight > 0):
     `adversarial.d_steps` critic updates (gan.discriminator_updates), each
     on its chunk of the real targets against clips generated from the
     same examples; else the critic is neither run nor trained and its
     metrics are 0.
  2. The generator's loss (`losses.weighted_sum` of the config's weights):
     MR-STFT against the targets, and with the critic on the adversarial
     and feature-matching terms of the updated critic. Its gradient
     updates the generator and, under 'joint', both encoders (frozen
     groups excepted), each with its own optimizer; EMA copies follow.

  Args:
    state: the train state (step, params, opt_state, ema_params).
    batch: {'video', 'reference', 'target'} of this device's examples.
    rng: this step's rng.
    config: the experiment config.
    modules: inference.av_models(config).
    frozen_encoders: the encoders' params under 'separate'; None under
      'joint' (they are then in the state).
    optimizers: {'generator', 'discriminator'[, 'acoustic', 'visual']}.
    ema_decay: the EMA decay, or None.
    frozen_mask: per encoder, True for the parameters kept as exported.
    critic_on: False for the warm-up steps before
      `generator.adversarial.start_step` (a separately compiled step).

  Returns:
    (new state, scalar metrics).
  """
  adversarial = config.generator.adversarial
  kind = adversarial.loss
  weights = dict(config.generator.loss_weights)
  joint = frozen_encoders is None
  if joint:
    # Stopping the gradient here spares the frozen layers' backward pass.
    encoders_of = lambda params: {n: _freeze(params[n], frozen_mask[n])
                                  for n in inference.ENCODERS}
  else:
    encoders_of = lambda params: frozen_encoders
  real = batch["target"]
  batch_size = real.shape[0]
  d_rng, z_rng, shuffle_rng, visual_rng = jax.random.split(rng, 4)
  posterior = modules.get("posterior")
  visual_noise_std = config.generator.get("visual_noise_std", 0.0)
  conditional_critic = config.generator.discriminator.get("condition", False)
  is_wavegan_critic = config.generator.discriminator.kind == "wavegan"

  def critic(d_params, waveform, condition, critic_rng, features=False):
    if is_wavegan_critic:
      return modules["discriminator"].apply(
          {"params": d_params}, waveform[..., None], rng=critic_rng,
          condition=condition if conditional_critic else None,
          return_features=features)
    return modules["discriminator"].apply(
        {"params": d_params}, waveform, return_features=features)

  encoder_params = encoders_of(state["params"])
  visual_context = jax.lax.stop_gradient(
      inference.conditioning(modules, encoder_params, batch)[0])

  def fake_fn(fake_rng, start, size):
    part = {k: v[start:start + size] for k, v in batch.items()}
    return inference.generate(
        modules, state["params"]["generator"], encoder_params, part,
        inference.noise(fake_rng, size, config),
        (visual_noise_std, jax.random.fold_in(fake_rng, 1)))

  use_critic = critic_on and uses_critic(config)
  if use_critic:
    state, d_metrics = gan.discriminator_updates(
        state, critic, real, visual_context, fake_fn, d_rng,
        num_updates=adversarial.d_steps, kind=kind,
        gp_weight=adversarial.gp_weight,
        optimizer=optimizers["discriminator"])
  else:  # Reconstruction only: the critic is neither trained nor run.
    d_metrics = {name: jnp.zeros(()) for name in gan.D_METRICS}
  d_params = state["params"]["discriminator"]
  trained = (("generator",) +
             (("posterior",) if posterior is not None else ()) +
             (inference.ENCODERS if joint else ()))
  z_prior = inference.noise(z_rng, batch_size, config)

  def g_loss_fn(trained_params):
    encoders = encoders_of(trained_params)
    if posterior is not None:  # Reparameterised: mean + std * prior draw.
      mean, log_variance = posterior.apply(
          {"params": trained_params["posterior"]}, real)
      z = mean + jnp.exp(0.5 * log_variance) * z_prior
      kl = losses.gaussian_kl(mean, log_variance)
    else:
      z, kl = z_prior, jnp.zeros(())
    fake = inference.generate(modules, trained_params["generator"],
                              encoders, batch, z,
                              (visual_noise_std, visual_rng))
    condition = inference.conditioning(modules, encoders, batch)[0]

    def adversarial_terms():
      fake_logits, fake_features = critic(d_params, fake, condition,
                                          shuffle_rng, features=True)
      _, real_features = critic(d_params, real, condition, shuffle_rng,
                                features=True)
      return (losses.generator_loss(kind, fake_logits),
              losses.feature_matching_loss(real_features, fake_features))

    stft = losses.multi_resolution_stft_loss(fake, real)
    if use_critic:
      adversarial_loss, matching = adversarial_terms()
    else:
      adversarial_loss, matching = jnp.zeros(()), jnp.zeros(())
    terms = {
        "stft": stft["total"],
        "waveform_mse": lambda: losses.waveform_mse(fake, real),
        "adversarial": adversarial_loss,
        "feature_matching": matching,
        "weight_decay": lambda: losses.weight_decay(
            trained_params["generator"]),
        "kl": kl,
    }
    total, values = losses.weighted_sum(terms, weights)
    values.update(spectral_convergence=stft["spectral_convergence"],
                  log_magnitude=stft["log_magnitude"])
    return total, values

  trained_params = {name: state["params"][name] for name in trained}
  (g_loss, values), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
      trained_params)
  decay = (None if ema_decay is None else
           state_lib.ema_decay_at(ema_decay, state["step"]))
  for name in trained:
    state = state_lib.apply_gradients(state, name, grads[name],
                                      optimizers[name], ema_decay=decay)
  state = state_lib.increment_step(state)
  metrics = {"loss": g_loss, "g_loss": g_loss, **values, **d_metrics,
             "g_grad_norm": state_lib.global_norm(grads["generator"]),
             "learning_rate": state_lib.learning_rate_of(
                 state["opt_state"]["generator"])}
  metrics["is_finite"] = jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(v)) for v in metrics.values()]))
  return state, metrics


def make_spec(config: ml_collections.ConfigDict, workdir: str, *,
              manual_dir=None, data_dir=None) -> stage_runner.StageSpec:
  """The StageSpec of the generator stage (needs the encoders' exports)."""
  if config.strategy not in ("separate", "joint"):
    raise errors.UserFacingError(
        f"strategy must be 'separate' or 'joint', got {config.strategy!r}")
  train_config = optimizers_lib.stage_train_config(config, STAGE)
  modules = inference.av_models(config)
  encoder_params = inference.load_encoders(config, workdir, modules)
  joint = config.strategy == "joint"
  optimizers = {"generator": optimizers_lib.optimizer_from(train_config)}
  posterior = posterior_model(config)
  if posterior is not None:
    modules = {**modules, "posterior": posterior}
    optimizers["posterior"] = optimizers_lib.optimizer_from(train_config)
  d_train = ml_collections.ConfigDict(train_config.to_dict())
  d_train.update({k[2:]: v for k, v in config.generator.adversarial.items()
                  if k.startswith("d_") and k != "d_steps"})
  optimizers["discriminator"] = optimizers_lib.optimizer_from(d_train)
  frozen_mask = joint_frozen_mask(config, encoder_params) if joint else None
  if joint:
    encoder_train = encoder_train_config(train_config)
    for name in inference.ENCODERS:
      optimizers[name] = optimizers_lib.optimizer_from(encoder_train)
      if any(jax.tree.leaves(frozen_mask[name])):
        # Zero updates, so that weight decay does not move them either.
        optimizers[name] = optax.chain(
            optimizers[name],
            optax.masked(optax.set_to_zero(), frozen_mask[name]))
  seed = config.seed + 3
  # The averaged models are those the generator's loss trains: the
  # generator, and in 'joint' the encoders it is exported with.
  ema_decay = optimizers_lib.ema_decay_from(train_config)
  ema_models = ("generator",) + (inference.ENCODERS if joint else ())
  inputs = inference.av_example_inputs(config)

  def init_fn():
    g_rng, d_rng = jax.random.split(jax.random.PRNGKey(seed))
    visual_context, acoustic_context, style = inference.conditioning(
        modules, encoder_params, inputs)
    z = inference.noise(g_rng, 1, config)
    params = {
        "generator": modules["generator"].init(
            g_rng, visual_context, acoustic_context, style, z=z)["params"]}
    if config.generator.discriminator.kind == "wavegan":
      params["discriminator"] = modules["discriminator"].init(
          d_rng, inputs["target"][..., None],
          condition=(visual_context if
                     config.generator.discriminator.get("condition") else
                     None))["params"]
    else:
      params["discriminator"] = modules["discriminator"].init(
          d_rng, inputs["target"])["params"]
    if posterior is not None:
      params["posterior"] = posterior.init(
          jax.random.fold_in(g_rng, 1), inputs["target"])["params"]
    if joint:
      params.update(encoder_params)
    return state_lib.create_train_state(params, optimizers,
                                        ema_decay=ema_decay,
                                        ema_models=ema_models)

  step_fn = functools.partial(
      _step, config=config, modules=modules,
      frozen_encoders=None if joint else encoder_params,
      optimizers=optimizers, ema_decay=ema_decay, frozen_mask=frozen_mask)
  # The warm-up is its own compiled step, not a lax.cond inside one: XLA:CPU
  # ran a critic inside a conditional 4x slower (docs/experiment_log.md).
  warm_up_steps = int(config.generator.adversarial.get("start_step", 0))
  if not uses_critic(config):
    warm_up_steps = 0
  warm_up_step_fn = (functools.partial(step_fn, critic_on=False)
                     if warm_up_steps else None)
  make_batches = batches.host_batches(
      config, split="train", global_batch_size=train_config.batch_size,
      seed=seed, manual_dir=manual_dir, data_dir=data_dir,
      fields=("video", "reference", "target"))
  make_batches = autoencoders.augmented(make_batches, config, STAGE, seed)

  fast_step_fn, fast_step_fits = autoencoders.frame_budget_step(
      config, train_config.batch_size, modules["visual"],
      lambda visual: functools.partial(step_fn,
                                       modules={**modules, "visual": visual}))
  warm_up_fast_step_fn = (
      functools.partial(fast_step_fn, critic_on=False)
      if warm_up_steps and fast_step_fn is not None else None)

  preview = _preview_fn(config, modules, encoder_params, joint, manual_dir,
                        data_dir)

  def export_fn(state):
    exported = {"generator": state_lib.averaged_params(state, "generator")}
    exported.update({name: state_lib.averaged_params(state, name) if joint
                     else encoder_params[name] for name in inference.ENCODERS})
    return exported

  return stage_runner.StageSpec(
      name=STAGE, train_config=train_config, init_fn=init_fn,
      step_fn=step_fn, make_batches=make_batches, export_fn=export_fn,
      summary_fn=preview, metrics_to_show=("stft", "adversarial", "d_loss", "kl"),
      seed=seed, fast_step_fn=fast_step_fn, fast_step_fits=fast_step_fits,
      warm_up_steps=warm_up_steps, warm_up_step_fn=warm_up_step_fn,
      warm_up_fast_step_fn=warm_up_fast_step_fn)


def _preview_fn(config, modules, frozen_encoders, joint, manual_dir, data_dir,
                num_clips=4):
  """summary_fn: real and generated audio and spectrograms of test clips."""
  fixed = {}

  @jax.jit
  def generate_preview(params, batch):
    encoders = ({n: params[n] for n in inference.ENCODERS} if joint
                else frozen_encoders)
    z = inference.noise(jax.random.PRNGKey(0), num_clips, config)
    return inference.generate(modules, params["generator"], encoders, batch, z)

  def summary_fn(state, step):
    del step
    if not fixed:  # Read once, at the first log step.
      dataset = pipeline.make_dataset(
          config.data.name, "test", global_batch_size=num_clips,
          data_dir=data_dir, builder_kwargs=batches.data_kwargs(config),
          shuffle=False, repeat=False, manual_dir=manual_dir,
          process_index=0, process_count=1)
      batch = next(dataset.as_numpy_iterator())
      fixed.update({k: batch[k] for k in ("video", "reference", "target")})
    # The models the export will hold: the EMA copies where kept.
    params = {name: state_lib.averaged_params(state, name)
              for name in state["params"]}
    generated = np.asarray(generate_preview(params, fixed))
    real = fixed["target"]
    return {"audio": {"generated": generated[..., None],
                      "real": real[..., None]},
            "images": {"generated_spectrogram":
                       summaries.spectrogram_images(generated),
                       "real_spectrogram":
                       summaries.spectrogram_images(real)},
            "sample_rate": config.data.sample_rate}
  return summary_fn
