"""Checks of a run's config made before anything trains.

`check_run_config` looks at the values every stage's train loop and the
stage choice depend on (step counts, batch sizes, intervals, learning rates,
EMA decay, the AV strategy, the batch against the devices), for every stage
of the experiment, so that a bad value stops the run at its start with a
message naming the key, not after earlier stages trained. The stages' own
model options are checked when each stage builds its spec.
"""

import numbers
from typing import Sequence

import jax
import ml_collections

from wavegan_jax import errors
from wavegan_jax.training import optimizers as optimizers_lib

# (key, least value, whether None is allowed) of a stage's train config.
_POSITIVE_INTS = (("num_steps", 1, False), ("batch_size", 1, False),
                  ("log_every", 1, False), ("checkpoint_every", 1, False),
                  ("keep_checkpoints", 1, False),
                  ("summary_every", 1, True))
_POSITIVE_FLOATS = ("learning_rate", "d_learning_rate")
STRATEGIES = ("separate", "joint")


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_stage(config: ml_collections.ConfigDict, stage: str,
                 num_devices: int, num_processes: int) -> None:
  """Raises ConfigError for the first bad value of one stage's config."""
  train_config = optimizers_lib.stage_train_config(config, stage)
  own = config[stage].get("train", {})

  def where(key):  # The key as the user sets it.
    return f"{stage}.train.{key}" if key in own else f"train.{key}"

  for key, least, optional in _POSITIVE_INTS:
    if key not in train_config:
      continue
    value = train_config[key]
    if value is None and optional:
      continue
    if not _is_int(value) or value < least:
      raise errors.ConfigError(
          f"{where(key)}={value!r}: must be an integer >= {least}")
  for key in _POSITIVE_FLOATS:
    value = train_config.get(key)
    if value is None:
      continue
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or
        not value > 0):
      raise errors.ConfigError(
          f"{where(key)}={value!r}: must be a number > 0")
  try:
    optimizers_lib.ema_decay_from(train_config)
  except errors.UserFacingError as error:
    raise errors.ConfigError(f"{stage}: {error}") from None
  batch_size = train_config.batch_size
  if batch_size % num_devices:
    raise errors.ConfigError(
        f"{where('batch_size')}={batch_size}: must be divisible by the "
        f"{num_devices} devices the batch is split over")
  if batch_size % num_processes:
    raise errors.ConfigError(
        f"{where('batch_size')}={batch_size}: must be divisible by the "
        f"{num_processes} processes")


def check_run_config(config: ml_collections.ConfigDict,
                     stages: Sequence[str]) -> None:
  """Raises ConfigError naming the first bad value of any of `stages`.

  Args:
    config: the experiment config.
    stages: every stage of the experiment (not only those run now: a later
      stage's bad value should not wait for the earlier ones to train).
  """
  if not _is_int(config.get("seed", 0)):
    raise errors.ConfigError(f"seed={config.seed!r}: must be an integer")
  if "acoustic" in config and config.get("strategy") not in STRATEGIES:
    raise errors.ConfigError(
        f"strategy={config.get('strategy')!r}: must be one of {STRATEGIES}")
  num_devices, num_processes = jax.device_count(), jax.process_count()
  for stage in stages:
    _check_stage(config, stage, num_devices, num_processes)
