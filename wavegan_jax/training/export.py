"""The export command's logic: one checkpoint's weights as a run to read.

`export_checkpoint` (launch/export_checkpoint.py) writes the weights of one
saved step, the last ones or their EMA copies, as a workdir that
evaluation and generation read like a finished run.
"""

import os

from wavegan_jax import errors
from wavegan_jax.training import checkpointing
from wavegan_jax.training import workdir as workdir_lib


WEIGHTS = ("last", "ema")


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
    raise errors.UserFacingError(f"weights must be one of {WEIGHTS}, got "
                                 f"{weights!r}")
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise errors.UserFacingError(
        f"{workdir} has no {workdir_lib.CONFIG_FILE}: not a run written by "
        "launch/train.py")
  directory = os.path.join(workdir, stage, "checkpoints")
  steps = sorted(int(name) for name in (
      os.listdir(directory) if os.path.isdir(directory) else [])
                 if name.isdigit())
  if step not in steps:
    raise errors.UserFacingError(
        f"no checkpoint of step {step} in {directory}; steps there: {steps}")
  state = checkpointing.load_step(directory, step)
  models = dict(state["params"])
  if weights == "ema":
    if not state.get("ema_params"):
      raise errors.UserFacingError(
          f"step {step} of {directory} keeps no EMA copies (the run had "
          "train.ema_decay off); export weights='last'")
    models.update(state["ema_params"])
  # Critics ('discriminator', 'spectral_discriminator') and the generator
  # stage's posterior encoder serve training only: not exported.
  models = {name: params for name, params in models.items()
            if not name.endswith("discriminator") and name != "posterior"}
  own_export = checkpointing.export_path(workdir, stage)
  if stage == "generator" and os.path.isdir(own_export):
    # Frozen ('separate') encoders are not in the state: the run's export
    # holds them.
    saved = checkpointing.load_params(own_export)
    models.update({name: saved[name] for name in saved if name not in models})
  os.makedirs(output_workdir, exist_ok=True)
  with open(config_path) as source, open(
      os.path.join(output_workdir, workdir_lib.CONFIG_FILE), "w") as target:
    target.write(source.read())
  checkpointing.export_params(
      os.path.abspath(checkpointing.export_path(output_workdir, stage)), models)
  return sorted(models)
