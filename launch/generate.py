r"""Generates audio from a trained workdir: launch/generate.py --workdir=W ...

Audio-visual workdir (experiments/av_digits.py):
  python launch/generate.py --workdir=workdirs/av_digits \
      --video=clip.mp4 --reference=voice.wav --output=out.wav \
      [--output_video=out.mp4] [--seed=0]
  python launch/generate.py --workdir=workdirs/av_digits \
      --manifest=jobs.csv [--batch_size=8]    # columns video,reference,output
Unconditional WaveGAN workdir (experiments/wavegan.py):
  python launch/generate.py --workdir=workdirs/wavegan --num_samples=16 \
      --output_dir=samples [--seed=0]
  python launch/generate.py --workdir=workdirs/wavegan --preview \
      [--output_dir=previews]   # one wav per checkpoint (W/wavegan/preview)

The video may be any file PyAV reads, an animated GIF or a folder of frames,
at any size, colour and frame rate; the reference any audio file at any rate
and channel count: both are converted to the model's clip (see
wavegan_jax/evaluation/generate.py). Bad input exits with status 2 and one
line `error: <file>: <what is wrong>`.
"""

import os
import sys

# TensorFlow (imported by the data package for its builders) only reads data
# here; its start-up lines would bury the one-line error messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging

from wavegan_jax import errors

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.",
                               required=True)
_VIDEO = flags.DEFINE_string(
    "video", None, "Input video: a file PyAV reads, a GIF, or a folder of "
    "image frames.")
_REFERENCE = flags.DEFINE_string("reference", None,
                                 "Reference recording (any audio file).")
_OUTPUT = flags.DEFINE_string("output", None, "Output .wav file.")
_OUTPUT_VIDEO = flags.DEFINE_string(
    "output_video", None, "Also write the video with the generated audio "
    "(.mp4, .mov or .mkv).")
_MANIFEST = flags.DEFINE_string(
    "manifest", None, "CSV with columns video,reference,output (optional "
    "output_video); relative paths are relative to the CSV's folder.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8,
                                   "Examples per generator call.")
_SEED = flags.DEFINE_integer("seed", 0, "Noise / latent seed.")
_NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples", None, "(WaveGAN) number of clips to write.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "(WaveGAN) folder for the clips or previews.")
_PREVIEW = flags.DEFINE_bool(
    "preview", False, "(WaveGAN) render fixed latents with every checkpoint.")


errors.define_debug_flag()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # Imported here so that --help stays fast.
  from wavegan_jax.evaluation import generate_command
  sys.exit(generate_command.run(
      _WORKDIR.value, video=_VIDEO.value, reference=_REFERENCE.value,
      output=_OUTPUT.value, output_video=_OUTPUT_VIDEO.value,
      manifest=_MANIFEST.value, batch_size=_BATCH_SIZE.value,
      seed=_SEED.value, num_samples=_NUM_SAMPLES.value,
      output_dir=_OUTPUT_DIR.value, preview=_PREVIEW.value))


if __name__ == "__main__":
  app.run(errors.cli_main(main))
