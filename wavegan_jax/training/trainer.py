"""`train_and_evaluate`: runs an experiment's stages in order.

The experiment kind follows from its config: a config with an `acoustic`
block is an audio-visual experiment (stages acoustic, visual, generator), one
with a `wavegan` block the unconditional WaveGAN, one with a `judges` block
the evaluation classifiers. A stage whose final metrics exist is skipped; an
interrupted one resumes from its latest checkpoint (stage_runner.run).
"""

import json
import os
from typing import Optional, Sequence

from absl import logging
import jax
import ml_collections

from wavegan_jax import errors
from wavegan_jax.training import checkpointing
from wavegan_jax.training import config_checks
from wavegan_jax.training import stage_runner
from wavegan_jax.training import workdir as workdir_lib

UserFacingError = errors.UserFacingError
MANUAL_DIR_ENV = "WAVEGAN_MANUAL_DIR"


def experiment_stages(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The stages of the experiment, in training order."""
  if "acoustic" in config:
    return ("acoustic", "visual", "generator")
  if "wavegan" in config:
    return ("wavegan",)
  if "judges" in config:
    return ("judges",)
  raise UserFacingError("The config has no acoustic, wavegan or judges "
                        "block: not an experiment this trainer knows.")


def stage_spec(config, stage, workdir, manual_dir, data_dir):
  """The StageSpec of one stage (imports only what that stage needs)."""
  # pylint: disable=g-import-not-at-top
  if stage in ("acoustic", "visual"):
    from wavegan_jax.training.stages import autoencoders
    return autoencoders.make_spec(config, stage, manual_dir=manual_dir,
                                  data_dir=data_dir)
  if stage == "generator":
    from wavegan_jax.training.stages import generator as generator_stage
    return generator_stage.make_spec(config, workdir, manual_dir=manual_dir,
                                     data_dir=data_dir)
  if stage == "wavegan":
    from wavegan_jax.training.stages import wavegan as wavegan_stage
    return wavegan_stage.make_spec(config, manual_dir=manual_dir,
                                   data_dir=data_dir)
  if stage == "judges":
    from wavegan_jax.training.stages import judges as judges_stage
    return judges_stage.make_spec(config, manual_dir=manual_dir,
                                  data_dir=data_dir)
  raise UserFacingError(f"Unknown stage {stage!r}")


def _resolve_dirs(config, manual_dir, data_dir):
  manual_dir = (manual_dir or config.data.get("manual_dir") or
                os.environ.get(MANUAL_DIR_ENV))
  data_dir = data_dir or config.data.get("data_dir")
  if manual_dir is not None and not os.path.isdir(manual_dir):
    raise UserFacingError(
        f"manual dir {manual_dir} does not exist (expected the raw data "
        "folder with fsdd/recordings and mnist/)")
  return manual_dir, data_dir


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stages: Optional[Sequence[str]] = None,
                       manual_dir: Optional[str] = None,
                       data_dir: Optional[str] = None) -> dict:
  """Trains the named stages (default: all) of the experiment in order.

  Args:
    config: the experiment config (experiments/*.py).
    workdir: the run directory; each stage writes <workdir>/<stage>/.
    stages: a subset of experiment_stages(config), run in training order.
    manual_dir: raw data folder (else config.data.manual_dir, else
      $WAVEGAN_MANUAL_DIR); without one the builders download the sources.
    data_dir: TFDS data dir (else config.data.data_dir, else TFDS's).

  Returns:
    {stage: final metrics} of the stages that ran or were already done.

  Raises:
    UserFacingError: for problems the user can fix (the message says what):
      a bad config value (before anything trains), a workdir another run
      holds (WorkdirLockedError), a workdir trained with another config
      (WorkdirConfigError).
  """
  all_stages = experiment_stages(config)
  stages = list(stages or all_stages)
  unknown = [s for s in stages if s not in all_stages]
  if unknown:
    raise UserFacingError(f"Unknown stage(s) {unknown}; this experiment has "
                          f"{list(all_stages)}")
  stages = [s for s in all_stages if s in stages]
  config_checks.check_run_config(config, all_stages)
  manual_dir, data_dir = _resolve_dirs(config, manual_dir, data_dir)
  workdir_lib.check_writable(workdir)
  if jax.process_index() != 0:
    return _train_stages(config, workdir, stages, manual_dir, data_dir)
  # Process 0 holds the workdir for the whole run: a second run on it stops
  # at once. A rerun must have the config the weights were trained with.
  with workdir_lib.WorkdirLock(workdir):
    if workdir_lib.check_config(workdir, config):
      workdir_lib.write_config(workdir, config)
    return _train_stages(config, workdir, stages, manual_dir, data_dir)


def _train_stages(config, workdir, stages, manual_dir, data_dir) -> dict:
  """Runs `stages` in order, skipping finished ones; their final metrics."""
  results = {}
  for stage in stages:
    final_path = os.path.join(workdir, stage, stage_runner.FINAL_METRICS)
    if stage_runner.is_finished(workdir, stage):
      logging.info("Stage %s already finished: skipping it.", stage)
      print(f"stage {stage}: already finished, skipped")
      with open(final_path) as f:
        results[stage] = json.load(f)
      continue
    try:
      spec = stage_spec(config, stage, workdir, manual_dir, data_dir)
      results[stage] = stage_runner.run(spec, workdir)
    except checkpointing.CheckpointMismatchError as error:
      raise UserFacingError(str(error)) from error
    print(f"stage {stage}: done, " + ", ".join(
        f"{k}={v:.4g}" for k, v in results[stage].items()
        if isinstance(v, float) and k in ("loss", "g_loss", "d_loss",
                                          "stft", "accuracy")))
  return results
