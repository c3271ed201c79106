"""A stage's train settings: its merged train config, optimizers and EMA.

`stage_train_config` merges `config.train` with `config.<stage>.train`;
`optimizer_from` and `ema_decay_from` read the Adam optimizer and the
exponential moving average that merged config asks for.
"""

from typing import Optional

import ml_collections

from wavegan_jax import errors
from wavegan_jax.training import state as state_lib


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
    raise errors.UserFacingError(
        f"train.ema_decay must be in [0, 1) (0 or None: no EMA), got "
        f"{decay!r}")
  return float(decay)
