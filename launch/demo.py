r"""Serves a local demo page for a trained workdir: launch/demo.py --workdir=W

  pip install -e ".[demo]"       # (the page itself needs nothing more)
  python launch/demo.py --workdir=workdirs/av_digits \
      [--port=7860] [--host=127.0.0.1] [--data_dir=D] [--manual_dir=M]

then open http://127.0.0.1:7860/. An audio-visual workdir gets a page that
takes a video (any file launch/generate.py takes, GIF included) and a
reference recording, or one of the AV-digits test examples (from --data_dir /
--manual_dir), and returns the audio, the video with it and their
spectrograms; a WaveGAN workdir gets a page that generates clips from a seed
and a latent scale. See docs/demo.md and wavegan_jax/demo/.
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
_HOST = flags.DEFINE_string(
    "host", "127.0.0.1", "Address to bind; 127.0.0.1 serves this machine "
    "only, 0.0.0.0 every network the machine is on.")
_PORT = flags.DEFINE_integer("port", 7860, "Port (0: any free one).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data dir with AV-digits prepared (the examples).")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "Raw FSDD / MNIST folder to prepare the examples "
    "from.")
_MAX_UPLOAD_MB = flags.DEFINE_float("max_upload_mb", 50,
                                    "Largest upload, in MB.")


errors.define_debug_flag()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # Imported here so that --help stays fast.
  from wavegan_jax.demo import server
  try:
    server.serve(_WORKDIR.value, host=_HOST.value, port=_PORT.value,
                 data_dir=_DATA_DIR.value, manual_dir=_MANUAL_DIR.value,
                 max_upload_bytes=int(_MAX_UPLOAD_MB.value * 1e6))
  except OSError as error:
    # A port that is taken is the user's to fix too (errors.cli_main says
    # the rest in one line).
    errors.print_error(error)
    sys.exit(errors.EXIT_USER_ERROR)


if __name__ == "__main__":
  app.run(errors.cli_main(main))
