r"""Scores a trained run with the judges: `launch/evaluate.py --workdir=W`.

Writes W/eval/metrics.json and W/eval/report.md (wavegan_jax/evaluation/
evaluate.py says what is measured). The judges come from --judges_workdir
(default: W/../judges), trained with
  python launch/train.py --config=experiments/judges.py --workdir=J

Examples:
  python launch/evaluate.py --workdir=workdirs/av_digits
  python launch/evaluate.py --workdir=workdirs/wavegan \
      --judges_workdir=workdirs/judges --num_examples=1000
  python launch/evaluate.py --workdir=workdirs/wavegan \
      --judges_workdir=workdirs/judges --latent_scale=0.8
  python launch/evaluate.py --workdir=workdirs/av_digits --instruments=false

Bad input (no trained generator, no judges, an unknown split) prints one
line `error: ...` and exits with status 2.
"""


from absl import app
from absl import flags
from absl import logging

from wavegan_jax import errors

_WORKDIR = flags.DEFINE_string("workdir", None, "The run to evaluate.",
                               required=True)
_SPLIT = flags.DEFINE_string("split", "test", "Data split to evaluate on.")
_JUDGES_WORKDIR = flags.DEFINE_string(
    "judges_workdir", None,
    "Run directory of the judges (default W/../judges).")
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", None, "AV: a random subset of the split (default: all); "
    "WaveGAN: clips to generate (default 1000).")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None,
    "Local copies of the raw data (default: $WAVEGAN_MANUAL_DIR).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32,
                                   "Generation / judging batch size.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the noise and subsets.")
_INSTRUMENTS = flags.DEFINE_bool(
    "instruments", True, "Also measure with DNSMOS, pYIN, PocketSphinx, MCD "
    "(AV) and tonal lines (WaveGAN) beside the real clips (docs/"
    "instruments.md); a few minutes on 2 cores.")
_INSTRUMENT_CLIPS = flags.DEFINE_integer(
    "instrument_clips", 300, "At most this many clips of each set for the "
    "instruments.")
_LATENT_SCALE = flags.DEFINE_float(
    "latent_scale", 1.0, "WaveGAN: the latents times this (< 1: "
    "truncation); results go to W/eval_latent_scale_S.")


errors.define_debug_flag()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # Imported here so that --help stays fast.
  # pylint: disable=g-import-not-at-top
  from wavegan_jax.evaluation import evaluate
  # pylint: enable=g-import-not-at-top
  # A user error ends in one line and exit 2 (errors.cli_main).
  results = evaluate.evaluate(
      _WORKDIR.value, split=_SPLIT.value,
      judges_workdir=_JUDGES_WORKDIR.value,
      num_examples=_NUM_EXAMPLES.value, manual_dir=_MANUAL_DIR.value,
      data_dir=_DATA_DIR.value, batch_size=_BATCH_SIZE.value,
      seed=_SEED.value, latent_scale=_LATENT_SCALE.value,
      instruments=_INSTRUMENTS.value,
      instrument_clips=_INSTRUMENT_CLIPS.value)
  print(", ".join(f"{key}={value:.4g}" if isinstance(value, float)
                  else f"{key}={value}" for key, value in results.items()))


if __name__ == "__main__":
  app.run(errors.cli_main(main))
