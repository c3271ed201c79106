r"""Exports one checkpoint of a run for `launch/evaluate.py` / generate.py.

A stage's own export holds its final weights; this writes those of any
kept checkpoint (`train.keep_checkpoints`, `train.checkpoint_every`), the
last weights or their EMA copies (`train.ema_decay`), as a new run
directory: OUT/config.json and OUT/<stage>/export.

Example: IS along a WaveGAN run, and its EMA at the end:
  python launch/train.py --config=experiments/wavegan.py --workdir=W \
      --config.train.keep_checkpoints=10 --config.train.checkpoint_every=2000
  python launch/export_checkpoint.py --workdir=W --stage=wavegan \
      --step=10000 --output_workdir=W_10000
  python launch/evaluate.py --workdir=W_10000 --judges_workdir=J

Bad input (no such run, step or EMA) prints one line `error: ...` and
exits with status 2.
"""


from absl import app
from absl import flags
from absl import logging

from wavegan_jax import errors

_WORKDIR = flags.DEFINE_string("workdir", None, "The trained run.",
                               required=True)
_STAGE = flags.DEFINE_enum("stage", None, ["wavegan", "generator"],
                           "The stage whose checkpoint to export.",
                           required=True)
_STEP = flags.DEFINE_integer("step", None, "A kept checkpoint's step.",
                             required=True)
_WEIGHTS = flags.DEFINE_enum(
    "weights", "last", ["last", "ema"],
    "The step's weights, or their EMA copies (runs with train.ema_decay).")
_OUTPUT_WORKDIR = flags.DEFINE_string(
    "output_workdir", None, "The run directory to write.", required=True)


errors.define_debug_flag()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # pylint: disable=g-import-not-at-top
  from wavegan_jax.training import export
  # pylint: enable=g-import-not-at-top
  # A user error ends in one line and exit 2 (errors.cli_main).
  models = export.export_checkpoint(
      _WORKDIR.value, _STAGE.value, _STEP.value, _WEIGHTS.value,
      _OUTPUT_WORKDIR.value)
  print(f"exported {_WEIGHTS.value} weights of {_WORKDIR.value} "
        f"{_STAGE.value} step {_STEP.value} ({', '.join(models)}) to "
        f"{_OUTPUT_WORKDIR.value}")


if __name__ == "__main__":
  app.run(errors.cli_main(main))
