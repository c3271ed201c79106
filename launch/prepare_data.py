r"""Prepares a TFDS data set: `launch/prepare_data.py --dataset=av_digits`.

Examples:
  python launch/prepare_data.py --dataset=av_digits \
      --manual_dir=../shared/data --data_dir=tensorflow_datasets
  python launch/prepare_data.py --dataset=av_digits --examples_per_take=8 \
      --manual_dir=../shared/data
  python launch/prepare_data.py --dataset=audio_folder --config=fsdd \
      --manual_dir=../shared/data/fsdd/recordings
  python launch/prepare_data.py --dataset=av_folder --manual_dir=my_videos \
      --data_dir=data/my_videos --sample_rate=16000 --num_samples=16384

Prints `split=NAME examples=N` per split and the time taken; a second run
finds the data prepared and says so. Without --manual_dir (and without
$WAVEGAN_MANUAL_DIR) av_digits downloads FSDD and MNIST.
"""

import os
import time

from absl import app
from absl import flags

from wavegan_jax import errors

_DATASET = flags.DEFINE_enum(
    "dataset", None, ["av_digits", "av_folder", "audio_folder"],
    "Which builder to prepare.", required=True)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR or "
    "~/tensorflow_datasets).")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Raw data: FSDD/MNIST copies for av_digits, the "
    "source folder for the folder builders (default: $WAVEGAN_MANUAL_DIR).")
_CONFIG = flags.DEFINE_string(
    "config", None, "A named builder config to start from (e.g. 'fsdd').")

# Config fields; only the ones given are passed on.
_INT_FIELDS = {
    "sample_rate": "Audio sample rate in Hz.",
    "num_samples": "Clip length in samples (av_*).",
    "num_frames": "Video frames per clip (av_*).",
    "frame_size": "Frame height and width (av_*).",
    "channels": "Video channels, 1 or 3 (av_folder).",
    "slice_len": "Samples per slice (audio_folder).",
    "num_channels": "Audio channels (audio_folder).",
    "seed": "Seed of the builder's random choices.",
    "examples_per_take": "Train examples drawn per FSDD recording "
                         "(av_digits; experiments/av_digits.py uses 8).",
}
_FLOAT_FIELDS = {
    "overlap_ratio": "Slice overlap in [0, 1) (audio_folder).",
    "test_fraction": "Share of files in test with split_by=hash (folders).",
}
_BOOL_FIELDS = {
    "first_slice_only": "Only each file's first slice (audio_folder).",
    "pad_end": "Zero-pad the last slice (audio_folder).",
    "random_offset": "Random slicing offset (audio_folder).",
    "normalize": "Per-file peak normalisation (audio_folder).",
}
for _name, _help in _INT_FIELDS.items():
  flags.DEFINE_integer(_name, None, _help)
for _name, _help in _FLOAT_FIELDS.items():
  flags.DEFINE_float(_name, None, _help)
for _name, _help in _BOOL_FIELDS.items():
  flags.DEFINE_bool(_name, None, _help)
flags.DEFINE_enum("split_by", None, ["hash", "fsdd_takes", "none"],
                  "How folder builders split files into train/test.")


errors.define_debug_flag()


def builder_kwargs() -> dict[str, object]:
  """The config choice and the config fields given on the command line."""
  names = list(_INT_FIELDS) + list(_FLOAT_FIELDS) + list(_BOOL_FIELDS)
  kwargs = {name: flags.FLAGS[name].value for name in names + ["split_by"]
            if flags.FLAGS[name].value is not None}
  if _CONFIG.value:
    kwargs["config"] = _CONFIG.value
  return kwargs


def main(argv):
  del argv
  from wavegan_jax.data import pipeline  # pylint: disable=g-import-not-at-top

  manual_dir = _MANUAL_DIR.value or os.environ.get("WAVEGAN_MANUAL_DIR")
  start = time.time()
  try:
    builder, already = pipeline.prepare_dataset(
        _DATASET.value, data_dir=_DATA_DIR.value, manual_dir=manual_dir,
        builder_kwargs=builder_kwargs())
  except ValueError as error:
    # TFDS and the builders raise ValueError for a bad field or folder.
    raise errors.UserFacingError(str(error)) from error
  print(f"dataset={builder.name}/{builder.builder_config.name} "
        f"dir={builder.data_dir}")
  for split, info in sorted(builder.info.splits.items()):
    print(f"split={split} examples={info.num_examples}")
  seconds = time.time() - start
  if already:
    print(f"already prepared; nothing to do ({seconds:.1f} s)")
  else:
    print(f"prepared in {seconds:.1f} s")


if __name__ == "__main__":
  app.run(errors.cli_main(main))
