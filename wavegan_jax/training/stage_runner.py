"""A stage's description (`StageSpec`) and `run`, which trains it.

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

from wavegan_jax import errors
from wavegan_jax.training import checkpointing
from wavegan_jax.training import loop
from wavegan_jax.training import parallel

PyTree = Any
FINAL_METRICS = "final_metrics.json"


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


def run(spec: StageSpec, workdir: str) -> dict:
  """Restores or initialises a stage, trains it, exports its params.

  Args:
    spec: the stage.
    workdir: the experiment's run directory.

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
    state, source = checkpointer.restore_or_init(spec.init_fn, mesh=mesh)
  except checkpointing.CheckpointMismatchError as error:
    checkpointer.close()
    raise errors.UserFacingError(str(error)) from error
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
    raise errors.UserFacingError(str(error)) from error
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
