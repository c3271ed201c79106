"""What every stage does around its train step: config, data, run, export.

A stage is described by a `StageSpec` (its name, how to build its step-0
state, its pure step function, its input stream and its export); `run` then
restores or initialises it, drives `loop.run_stage`, and writes the
params-only export the next stage restores. Layout of a stage's directory:

  <workdir>/<stage>/checkpoints/   Orbax CheckpointManager (latest N steps)
  <workdir>/<stage>/export/        params-only, for the next stage
  <workdir>/<stage>/metrics.jsonl  one JSON object per log step
  <workdir>/<stage>/final_metrics.json
  <workdir>/<stage>/events.*       TensorBoard scalars, audio and images
"""

import dataclasses
import json
import os
from typing import Any, Callable, Iterator, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from wavegan_jax import errors
from wavegan_jax import spectral
from wavegan_jax.training import checkpointing
from wavegan_jax.training import loop
from wavegan_jax.training import parallel
from wavegan_jax.training import state as state_lib

PyTree = Any
FINAL_METRICS = "final_metrics.json"


UserFacingError = errors.UserFacingError


def stage_train_config(config: ml_collections.ConfigDict,
                       stage: str) -> ml_collections.ConfigDict:
  """config.train overridden by config.<stage>.train, as one ConfigDict."""
  merged = ml_collections.ConfigDict(config.train.to_dict())
  overrides = config[stage].get("train", {})
  for key, value in dict(overrides).items():
    merged[key] = value
  return merged


def optimizer_from(train_config, prefix: str = ""):
  """The Adam optimizer a (stage) train config asks for.

  Args:
    train_config: a merged stage train config (stage_train_config).
    prefix: read `<prefix>learning_rate`, `<prefix>b1`, `<prefix>b2` first
      when present (e.g. 'd_' for a discriminator's own settings).

  Returns:
    An optax transformation from state.make_optimizer.
  """
  def get(key, default=None):
    return train_config.get(prefix + key, train_config.get(key, default))
  return state_lib.make_optimizer(
      learning_rate=get("learning_rate"), b1=get("b1", 0.9),
      b2=get("b2", 0.999), weight_decay=get("weight_decay", 0.0),
      grad_clip_norm=get("grad_clip_norm"),
      warmup_steps=get("warmup_steps", 0),
      schedule=get("schedule", "constant"),
      total_steps=train_config.num_steps,
      decay_start=get("decay_start", 0))


def ema_decay_from(train_config) -> Optional[float]:
  """The EMA decay a stage train config asks for; None (or 0) means none.

  Raises:
    UserFacingError: if the decay is not in [0, 1).
  """
  decay = train_config.get("ema_decay")
  if decay is None or decay == 0:
    return None
  if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not (
      0.0 < decay < 1.0):
    raise UserFacingError(
        f"train.ema_decay must be in [0, 1) (0 or None: no EMA), got "
        f"{decay!r}")
  return float(decay)


def spectrogram_images(audio: jax.Array, n_fft: int = 256,
                       hop_length: int = 64) -> np.ndarray:
  """Log-magnitude spectrograms as [N, freq, time, 1] images in [0, 1]."""
  magnitude = spectral.magnitude(
      spectral.stft(audio, n_fft, hop_length), 1e-7)
  log_magnitude = np.log(np.asarray(magnitude) + 1e-5)
  image = np.flip(np.transpose(log_magnitude, (0, 2, 1)), axis=1)
  low, high = image.max() - 8.0, image.max()  # An 80 dB-ish window.
  return ((np.clip(image, low, high) - low) / (high - low))[..., None]


@dataclasses.dataclass
class StageSpec:
  """Everything stage-specific that `run` needs.

  Attributes:
    name: the stage name (its directory under the workdir).
    train_config: the merged train config (stage_train_config).
    init_fn: () -> step-0 train state; pure (traced by jax.eval_shape).
    step_fn: pure (state, batch, rng) -> (state, metrics).
    make_batches: start_step -> iterator of process-local numpy batches.
    export_fn: state -> the params-only pytree the next stage needs.
    summary_fn: optional (state, step) -> summaries (see loop.run_stage).
    metrics_to_show: metric names for the progress bar.
    seed: the stage's seed (its base rng).
    final_fn: optional state -> {name: float}, run once after the last step
      (e.g. held-out accuracy); merged into final_metrics.json.
    fast_step_fn: optional pure step with step_fn's signature and result
      that is valid only for the batches `fast_step_fits` accepts (e.g. the
      visual CNN on a frame budget); those steps run it, the others
      step_fn (see loop.run_stage).
    fast_step_fits: this process's host batch -> whether fast_step_fn may
      run on it.
    warm_up_steps: steps [0, warm_up_steps) run warm_up_step_fn (and
      warm_up_fast_step_fn where the fast step would run), e.g. the
      generator's reconstruction-only steps before its critic starts.
    warm_up_step_fn: the warm-up's step_fn; required with warm_up_steps.
    warm_up_fast_step_fn: the warm-up's fast_step_fn; required with both.
  """
  name: str
  train_config: ml_collections.ConfigDict
  init_fn: Callable[[], PyTree]
  step_fn: Callable
  make_batches: Callable[[int], Iterator[dict]]
  export_fn: Callable[[PyTree], PyTree]
  summary_fn: Optional[Callable[[PyTree, int], dict]] = None
  metrics_to_show: Sequence[str] = ("loss",)
  seed: int = 0
  final_fn: Optional[Callable[[PyTree], dict]] = None
  fast_step_fn: Optional[Callable] = None
  fast_step_fits: Optional[Callable[[dict], bool]] = None
  warm_up_steps: int = 0
  warm_up_step_fn: Optional[Callable] = None
  warm_up_fast_step_fn: Optional[Callable] = None


def is_finished(workdir: str, stage: str) -> bool:
  """Whether the stage wrote its final metrics (and so its export)."""
  return os.path.exists(os.path.join(workdir, stage, FINAL_METRICS))


WEIGHTS = ("last", "ema")
CONFIG_FILE = "config.json"


def export_checkpoint(workdir: str, stage: str, step: int, weights: str,
                      output_workdir: str) -> list:
  """Writes one checkpoint's weights as a run that evaluate/generate read.

  The output workdir gets the run's config.json and `<stage>/export` with
  the models of that step: the last weights or their EMA copies (where kept;
  models without one, and frozen encoders, as the run's own export has
  them). The critic is left out, as in a stage's own export.

  Args:
    workdir: the trained run.
    stage: 'wavegan' or 'generator'.
    step: a step of <workdir>/<stage>/checkpoints.
    weights: 'last' (state['params']) or 'ema' (state['ema_params']).
    output_workdir: a new directory (an existing export is replaced).

  Returns:
    The names of the exported models.

  Raises:
    UserFacingError: no such run, stage, step or EMA; an unknown `weights`.
  """
  if weights not in WEIGHTS:
    raise UserFacingError(f"weights must be one of {WEIGHTS}, got "
                          f"{weights!r}")
  config_path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise UserFacingError(f"{workdir} has no {CONFIG_FILE}: not a run "
                          "written by launch/train.py")
  directory = os.path.join(workdir, stage, "checkpoints")
  steps = sorted(int(name) for name in (
      os.listdir(directory) if os.path.isdir(directory) else [])
                 if name.isdigit())
  if step not in steps:
    raise UserFacingError(f"no checkpoint of step {step} in {directory}; "
                          f"steps there: {steps}")
  state = checkpointing.load_step(directory, step)
  models = dict(state["params"])
  if weights == "ema":
    if not state.get("ema_params"):
      raise UserFacingError(
          f"step {step} of {directory} keeps no EMA copies (the run had "
          "train.ema_decay off); export weights='last'")
    models.update(state["ema_params"])
  # Critics ('discriminator', 'spectral_discriminator') are not exported.
  models = {name: params for name, params in models.items()
            if not name.endswith("discriminator")}
  own_export = checkpointing.export_path(workdir, stage)
  if stage == "generator" and os.path.isdir(own_export):
    # Frozen ('separate') encoders are not in the state: the run's export
    # holds them.
    saved = checkpointing.load_params(own_export)
    models.update({name: saved[name] for name in saved if name not in models})
  os.makedirs(output_workdir, exist_ok=True)
  with open(config_path) as source, open(
      os.path.join(output_workdir, CONFIG_FILE), "w") as target:
    target.write(source.read())
  checkpointing.export_params(
      os.path.abspath(checkpointing.export_path(output_workdir, stage)), models)
  return sorted(models)


def run(spec: StageSpec, workdir: str,
        init_from: Optional[str] = None) -> dict:
  """Restores or initialises a stage, trains it, exports its params.

  Args:
    spec: the stage.
    workdir: the experiment's run directory.
    init_from: params to start from when the stage has no checkpoint.

  Returns:
    The stage's final metrics as written to final_metrics.json: the step,
    the last step's metrics and those of spec.final_fn.
  """
  stage_dir = os.path.join(workdir, spec.name)
  train_config = spec.train_config
  mesh = parallel.make_data_mesh()
  checkpointer = checkpointing.StageCheckpointer(
      os.path.join(stage_dir, "checkpoints"),
      max_to_keep=train_config.keep_checkpoints)
  try:
    state, source = checkpointer.restore_or_init(spec.init_fn, init_from,
                                                 mesh=mesh)
  except checkpointing.CheckpointMismatchError as error:
    checkpointer.close()
    raise UserFacingError(str(error)) from error
  logging.info("Stage %s: state from %s at step %d", spec.name, source,
               int(jax.device_get(state["step"])))
  compiled_step = parallel.compile_train_step(spec.step_fn, mesh)
  # Compiled lazily, at their first use: a stage whose batches all fit the
  # fast step never compiles step_fn.
  fast_step = (None if spec.fast_step_fn is None else
               parallel.compile_train_step(spec.fast_step_fn, mesh))
  warm_up = None
  if spec.warm_up_steps:
    if spec.warm_up_step_fn is None or (
        (spec.fast_step_fn is None) != (spec.warm_up_fast_step_fn is None)):
      raise ValueError(f"Stage {spec.name}: warm_up_steps needs "
                       "warm_up_step_fn, and warm_up_fast_step_fn where "
                       "there is a fast step")
    warm_up = loop.WarmUp(
        steps=spec.warm_up_steps,
        train_step=parallel.compile_train_step(spec.warm_up_step_fn, mesh),
        fast_step=(None if spec.warm_up_fast_step_fn is None else
                   parallel.compile_train_step(spec.warm_up_fast_step_fn,
                                               mesh)))
  base_rng = parallel.replicate(jax.random.PRNGKey(spec.seed), mesh)
  try:
    with checkpointing.PreemptionGuard() as guard:
      state, metrics = loop.run_stage(
          name=spec.name, workdir=stage_dir, state=state,
          train_step=compiled_step, fast_step=fast_step,
          fast_step_fits=spec.fast_step_fits, batches=spec.make_batches,
          num_steps=train_config.num_steps, base_rng=base_rng,
          checkpointer=checkpointer, log_every=train_config.log_every,
          summary_every=train_config.get("summary_every"),
          checkpoint_every=train_config.checkpoint_every,
          examples_per_step=train_config.batch_size,
          summary_fn=spec.summary_fn,
          metrics_to_show=spec.metrics_to_show, mesh=mesh,
          preemption_guard=guard, warm_up=warm_up)
  except loop.NonFiniteError as error:
    raise UserFacingError(str(error)) from error
  finally:
    with loop.warn_if_slow(spec.name, "closing the checkpoint manager"):
      checkpointer.close()
  with loop.warn_if_slow(spec.name, "writing the export"):
    checkpointing.export_params(checkpointing.export_path(workdir, spec.name),
                                spec.export_fn(state))
  if spec.final_fn is not None:
    metrics = {**metrics, **spec.final_fn(state)}
  final = {"step": train_config.num_steps, **metrics}
  if jax.process_index() == 0:
    with open(os.path.join(stage_dir, FINAL_METRICS), "w") as f:
      json.dump(final, f, indent=1)
  return final
