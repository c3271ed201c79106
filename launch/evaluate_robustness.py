r"""Scores an AV run on videos unlike its training frames.

  python launch/evaluate_robustness.py --workdir=W [--judges_workdir=J] \
      [--set_dir=S] [--output_dir=O] [--clips_per_kind=30] [--kinds=a,b]

Makes the robustness set (wavegan_jax/data/robustness.py: printed fonts,
other scales, positions, stroke widths, inverted and coloured frames, other
frame sizes and rates, as real .mp4 files) in O/set unless --set_dir names
one, generates audio for every clip through the generate path and writes
digit / speaker accuracy and sync error per kind and overall to
O/metrics.json and O/report.md (O defaults to W/eval/robustness; W is only
read). docs/robustness.md says more.

  python launch/evaluate_robustness.py --make_set_only --set_dir=S

only makes the set. Bad input prints one line `error: ...` and exits with
status 2.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from wavegan_jax import errors

_WORKDIR = flags.DEFINE_string("workdir", None, "The AV run to evaluate.")
_JUDGES_WORKDIR = flags.DEFINE_string(
    "judges_workdir", None, "Run directory of the judges (default "
    "W/../judges).")
_SET_DIR = flags.DEFINE_string(
    "set_dir", None, "The robustness set (made there if absent; default "
    "<output_dir>/set).")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where results go (default W/eval/robustness).")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Raw FSDD / MNIST data to make the set from "
    "(default: $WAVEGAN_MANUAL_DIR).")
_CLIPS_PER_KIND = flags.DEFINE_integer(
    "clips_per_kind", None, "Clips of each kind when making the set "
    "(default: what a set there holds, else 30).")
_KINDS = flags.DEFINE_list(
    "kinds", None, "Rendering kinds to make (default all).")
_SET_SEED = flags.DEFINE_integer(
    "set_seed", None, "Seed of the set (default: what a set there holds, "
    "else 0).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32,
                                   "Generation / judging batch size.")
_SEED = flags.DEFINE_integer("seed", 0, "Clip k uses the noise of seed + k.")
_MAKE_SET_ONLY = flags.DEFINE_bool(
    "make_set_only", False, "Only write the set to --set_dir.")


errors.define_debug_flag()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # Imported here so that --help stays fast.
  from wavegan_jax.data import robustness as robustness_set
  from wavegan_jax.evaluation import robustness
  # pylint: enable=g-import-not-at-top
  # A user error ends in one line and exit 2 (errors.cli_main).
  if _MAKE_SET_ONLY.value:
    if not _SET_DIR.value:
      raise errors.EvaluationError("--make_set_only needs --set_dir")
    manual_dir = _MANUAL_DIR.value or os.environ.get("WAVEGAN_MANUAL_DIR")
    if not manual_dir:
      raise errors.EvaluationError(
          "--make_set_only needs --manual_dir (or $WAVEGAN_MANUAL_DIR)")
    manifest = robustness_set.make_set(
        manual_dir, _SET_DIR.value, kinds=_KINDS.value,
        clips_per_kind=(_CLIPS_PER_KIND.value or
                        robustness_set.DEFAULT_CLIPS_PER_KIND),
        seed=_SET_SEED.value or 0)
    print(f"wrote {manifest}")
    return
  if not _WORKDIR.value:
    raise errors.EvaluationError("--workdir is required (or --make_set_only)")
  results = robustness.evaluate_robustness(
      _WORKDIR.value, judges_workdir=_JUDGES_WORKDIR.value,
      set_dir=_SET_DIR.value, output_dir=_OUTPUT_DIR.value,
      manual_dir=_MANUAL_DIR.value, clips_per_kind=_CLIPS_PER_KIND.value,
      kinds=_KINDS.value, set_seed=_SET_SEED.value,
      batch_size=_BATCH_SIZE.value, seed=_SEED.value)
  for kind, values in results["kinds"].items():
    print(f"{kind}: digit={values['digit_accuracy']:.3f} "
          f"(real {values['real_digit_accuracy']:.3f}) "
          f"sync_ms={values['sync_error_ms_median']}")
  print(f"all: digit={results['digit_accuracy']:.3f} "
        f"(real {results['real_digit_accuracy']:.3f}) "
        f"sync_ms={results['sync_error_ms_median']} "
        f"min_kind={results['min_kind']} "
        f"({results['min_kind_digit_accuracy']:.3f})")


if __name__ == "__main__":
  app.run(errors.cli_main(main))
