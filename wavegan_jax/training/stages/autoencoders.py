"""Stages 1 and 2: the acoustic and the visual autoencoders.

Both are unsupervised: the acoustic model learns to reconstruct the log-mel
of FSDD speech (target and reference clips of AV-digits), the visual model
to reconstruct the frame features and pixels of the digit videos. Each
stage's objective is `losses.weighted_sum` of its terms with the config's
`loss_weights`; every term is logged.
"""

import functools
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections

from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax import losses
from wavegan_jax.data import augment
from wavegan_jax.data import batches
from wavegan_jax.models import visual as visual_lib
from wavegan_jax.training import optimizers as optimizers_lib
from wavegan_jax.training import stage_runner
from wavegan_jax.training import state as state_lib


def _visual_count(config: ml_collections.ConfigDict, key: str, total: int,
                  of_what: str, no_value: str) -> Optional[int]:
  """ceil(`config.visual[key]` x total), the key a fraction in (0, 1] of
  `of_what`; None for 0, None or a count of `total` or more."""
  fraction = config.visual.get(key)
  if fraction is None or (fraction == 0 and not isinstance(fraction, bool)):
    return None
  if isinstance(fraction, bool) or not isinstance(
      fraction, (int, float)) or not 0 < fraction <= 1:
    raise errors.UserFacingError(
        f"visual.{key} must be a fraction in (0, 1] of {of_what} (0 or "
        f"None: {no_value}), got {fraction!r}")
  count = math.ceil(fraction * total)
  return count if count < total else None


def visual_frame_budget(config: ml_collections.ConfigDict,
                        global_batch_size: int) -> Optional[int]:
  """Frames the visual CNN runs on in a fast train step (None: no budget).

  `config.visual.frame_budget` is a fraction of the batch's frames; a
  budget of every frame is no budget.

  Raises:
    UserFacingError: if the fraction is not in (0, 1].
  """
  return _visual_count(config, "frame_budget",
                       global_batch_size * config.data.num_frames,
                       "a batch's frames", "no budget")


def visual_render_frames(config: ml_collections.ConfigDict) -> Optional[int]:
  """Frames per clip rendered for the pixel loss in training (None: all).

  `config.visual.render_fraction` is a fraction of each clip's frames.

  Raises:
    UserFacingError: if the fraction is not in (0, 1].
  """
  return _visual_count(config, "render_fraction", config.data.num_frames,
                       "a clip's frames", "all")


def frames_fit(budget: int) -> Callable[[dict], bool]:
  """fast_step_fits: this process's share of the budget holds its frames.

  Each of the P processes may use budget // P distinct frames, so that the
  global batch fits whenever every process's part does (frames equal across
  processes only lower the global count).
  """
  share = budget // jax.process_count()
  return lambda batch: visual_lib.count_distinct_frames(
      batch["video"]) <= share


def frame_budget_step(config: ml_collections.ConfigDict,
                      global_batch_size: int, visual: visual_lib.VisualModel,
                      step_on: Callable[[visual_lib.VisualModel], Callable]
                      ) -> tuple[Optional[Callable], Optional[Callable]]:
  """A stage's fast step on the config's frame budget (StageSpec fields).

  Args:
    config: the experiment config (`visual.frame_budget`).
    global_batch_size: the stage's batch over all processes.
    visual: the stage's visual model.
    step_on: visual model -> the stage's step function running it.

  Returns:
    (fast_step_fn, fast_step_fits): the step on `visual` with the budget
    and the test of which host batches it may run; (None, None) without a
    budget.
  """
  budget = visual_frame_budget(config, global_batch_size)
  if budget is None:
    return None, None
  return step_on(visual.clone(frame_budget=budget)), frames_fit(budget)


def augmented(make_batches, config: ml_collections.ConfigDict, stage: str,
              seed: int):
  """A stage's make_batches with `visual.augment` applied (data/augment.py).

  Raises:
    UserFacingError: a bad `visual.augment` block.
  """
  try:
    return augment.augmented_batches(make_batches, config, stage, seed)
  except augment.AugmentConfigError as error:
    raise errors.UserFacingError(str(error)) from error


def acoustic_inputs(batch):
  """Both clips of an AV-digits example are speech to learn from."""
  return jnp.concatenate([batch["target"], batch["reference"]], axis=0)


def acoustic_terms(outputs, params, audio):
  del audio  # The target is the model's own stop-gradient log-mel.
  return {
      "feature_mse": jnp.mean(
          jnp.square(outputs["reconstruction"] - outputs["target"])),
      "weight_decay": lambda: losses.weight_decay(params),
  }


def visual_inputs(batch):
  return batch["video"]


def visual_terms(outputs, params, video):
  pixels = video.astype(jnp.float32) / 255.0
  if "frame_index" in outputs:  # Only some frames were rendered.
    pixels = jnp.take_along_axis(
        pixels, outputs["frame_index"][:, :, None, None, None], axis=1)
  return {
      "feature_mse": jnp.mean(jnp.square(
          outputs["reconstruction"] -
          jax.lax.stop_gradient(outputs["features"]))),
      "frame_mse": lambda: jnp.mean(jnp.square(outputs["frames"] - pixels)),
      "weight_decay": lambda: losses.weight_decay(params),
  }


def _autoencoder_step(state, batch, rng, *, name, model, optimizer,
                      inputs_fn, terms_fn, weights):
  """One Adam step on the weighted reconstruction objective."""
  inputs = inputs_fn(batch)

  def loss_fn(params):
    # 'render': the visual model's choice of frames to render (if any).
    outputs = model.apply({"params": params}, inputs, train=True,
                          rngs={"render": rng})
    return losses.weighted_sum(terms_fn(outputs, params, inputs), weights)

  (total, values), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state["params"][name])
  state = state_lib.apply_gradients(state, name, grads, optimizer)
  state = state_lib.increment_step(state)
  grad_norm = state_lib.global_norm(grads)
  metrics = {"loss": total, **values, "grad_norm": grad_norm,
             "learning_rate": state_lib.learning_rate_of(
                 state["opt_state"][name]),
             "is_finite": jnp.isfinite(total) & jnp.isfinite(grad_norm)}
  return state, metrics


def make_spec(config: ml_collections.ConfigDict, name: str, *,
              manual_dir=None, data_dir=None) -> stage_runner.StageSpec:
  """The StageSpec of the 'acoustic' or 'visual' stage."""
  train_config = optimizers_lib.stage_train_config(config, name)
  if name == "acoustic":
    model = inference.acoustic_model(config)
    inputs_fn, terms_fn = acoustic_inputs, acoustic_terms
    init_model = model
    fields = ("target", "reference")
    example = jnp.zeros((1, config.data.num_samples), jnp.float32)
  elif name == "visual":
    # Same params as the train model.
    init_model = inference.visual_model(config)
    model = init_model.clone(render_frames=visual_render_frames(config))
    inputs_fn, terms_fn = visual_inputs, visual_terms
    fields = ("video",)
    size = config.data.frame_size
    example = jnp.zeros((1, config.data.num_frames, size, size, 1), jnp.uint8)
  else:
    raise ValueError(f"Not an autoencoder stage: {name!r}")
  optimizer = optimizers_lib.optimizer_from(train_config)
  seed = config.seed + (1 if name == "acoustic" else 2)

  def init_fn():
    params = init_model.init(jax.random.PRNGKey(seed), example)["params"]
    return state_lib.create_train_state({name: params}, {name: optimizer})

  step_fn = functools.partial(
      _autoencoder_step, name=name, model=model, optimizer=optimizer,
      inputs_fn=inputs_fn, terms_fn=terms_fn,
      weights=dict(config[name].loss_weights))
  make_batches = batches.host_batches(
      config, split="train", global_batch_size=train_config.batch_size,
      seed=seed, manual_dir=manual_dir, data_dir=data_dir, fields=fields)
  fast_step_fn = fast_step_fits = None
  if name == "visual":
    # Re-rendered on the host, so the frame budget sees the step's frames.
    make_batches = augmented(make_batches, config, name, seed)
    fast_step_fn, fast_step_fits = frame_budget_step(
        config, train_config.batch_size, model,
        lambda visual: functools.partial(step_fn, model=visual))
  return stage_runner.StageSpec(
      name=name, train_config=train_config, init_fn=init_fn, step_fn=step_fn,
      make_batches=make_batches, export_fn=lambda s: s["params"][name],
      metrics_to_show=("loss",), seed=seed, fast_step_fn=fast_step_fn,
      fast_step_fits=fast_step_fits)
