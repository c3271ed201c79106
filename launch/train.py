r"""Trains the stages of an experiment: `launch/train.py --config=... --workdir=...`.

Examples:
  python launch/train.py --config=experiments/av_digits.py:tiny \
      --workdir=workdirs/tiny
  python launch/train.py --config=experiments/av_digits.py \
      --workdir=workdirs/av_digits --stages=generator \
      --config.generator.train.learning_rate=1e-4

Multi-host: on TPU pods and SLURM/GPU clusters jax.distributed detects the
cluster by itself; elsewhere pass --coordinator_address, --num_processes and
--process_id (see launch/local_cluster.py).
"""


from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from wavegan_jax import errors
from wavegan_jax.launching import sweeps

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, optionally with ':VARIANT'.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.",
                               required=True)
_STAGES = flags.DEFINE_list(
    "stages", None, "Stages to run in order (default: all of the experiment).")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None,
    "Local copies of the raw data (default: $WAVEGAN_MANUAL_DIR).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data dir (default: $TFDS_DATA_DIR or "
    "~/tensorflow_datasets).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "This process's index (multi-host).")


errors.define_debug_flag()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # Orbax and TFDS log every file they touch at INFO; the progress bar and
    # metrics.jsonl say what a user needs. `-v 0` brings INFO back.
    logging.set_verbosity(logging.WARNING)
  # Imported here so that --help stays fast.
  from wavegan_jax.training import parallel  # pylint: disable=g-import-not-at-top
  from wavegan_jax.training import trainer  # pylint: disable=g-import-not-at-top
  parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                  _PROCESS_ID.value)
  import jax  # pylint: disable=g-import-not-at-top
  logging.info("JAX process %d / %d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  # A user error ends in one line and exit 2 (errors.cli_main).
  trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             stages=_STAGES.value,
                             manual_dir=_MANUAL_DIR.value,
                             data_dir=_DATA_DIR.value)


if __name__ == "__main__":
  app.run(errors.cli_main(main), flags_parser=sweeps.parse_flags)
