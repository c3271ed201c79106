r"""Benchmarks WaveGAN and the AV-digits stages; prints a table.

Sections (`--sections`, default all), in one process:
  wavegan:    WaveGAN d=64, 16384 samples, batch 16: generate, generator step,
              WGAN-GP critic step, JAX vs a PyTorch twin, timed alternately;
  generation: clips/s, real-time factor, GFLOP/s vs a float32 matmul peak;
  stages:     each AV-digits stage's train step (batch 16, synthetic data);
  pipeline:   input pipelines' examples/s vs what the steps consume (needs
              the data: --manual_dir, default $WAVEGAN_MANUAL_DIR);
  profile:    where the --profile_stages' steps spend their time, per pass
              (forward / backward) and model part (a jax.profiler trace).
The logic lives in wavegan_jax/benchmarking/.

  python launch/benchmark.py --output=/tmp/benchmark.json
  python launch/benchmark.py --sections=profile \
      --profile_stages=generator,visual
  python launch/benchmark.py --dim=4 --batch_size=2 --repeats=1 \
      --stage_config=experiments/av_digits.py:tiny --pipeline_batches=2
  # The default experiment's WaveGAN shapes (nearest-neighbour upsampling):
  python launch/benchmark.py --sections=wavegan,generation --dim=16 \
      --slice_len=8192 --upsample=nn --sample_rate=8000
"""

import json
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from wavegan_jax.benchmarking import report
from wavegan_jax.benchmarking import sections
from wavegan_jax import errors
from wavegan_jax.launching import sweeps
from wavegan_jax.models import conv
from wavegan_jax.models import wavegan

_SECTIONS = flags.DEFINE_list("sections", list(sections.SECTIONS),
                              "Sections to run, in order.")
_DIM = flags.DEFINE_integer("dim", 64, "WaveGAN model width d.")
_SLICE_LEN = flags.DEFINE_integer("slice_len", 16384, "Samples per example.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "WaveGAN batch.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per workload.")
_SAMPLE_RATE = flags.DEFINE_integer(
    "sample_rate", 16000, "Hz of the generated clips (real-time factor).")
_MATMUL_SIZE = flags.DEFINE_integer("matmul_size", 2048,
                                    "n of the n x n peak matrix product.")
_STAGE_CONFIG = config_flags.DEFINE_config_file(
    "stage_config", "experiments/av_digits.py",
    "The AV-digits config whose stages are timed.")
_STAGE_REPEATS = flags.DEFINE_integer("stage_repeats", 5,
                                      "Timed steps per AV-digits stage.")
_WAVEGAN_CONFIG = config_flags.DEFINE_config_file(
    "wavegan_config", "experiments/wavegan.py",
    "The WaveGAN config whose audio_folder pipeline is timed.")
# The untimed warm-up batch fills the 10,000-example shuffle buffer, which
# holds all of a small split (av_digits with 1 or 3 examples per recording):
# the rest of its first epoch comes out without reading, so a short window
# overstates it. 1000 batches of 16 span several epochs of such a split.
_PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 1000, "Timed batches per input stream (span "
    "several epochs of a small split: see the comment above).")
_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", os.environ.get("WAVEGAN_MANUAL_DIR"),
    "Raw data folder (default $WAVEGAN_MANUAL_DIR).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir.")
_CONV_IMPL = flags.DEFINE_enum(
    "conv_impl", wavegan.DEFAULT_CONV_IMPL, conv.IMPLEMENTATIONS,
    "The JAX convolutions compared with PyTorch (wavegan_jax/models/conv.py).")
_COMPARE_IMPLS = flags.DEFINE_list(
    "compare_impls", ["winograd"],
    "Other JAX convolutions timed beside it in section 1 ('reference' is "
    "the slow plain formulation); empty for none.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 2,
                                      "torch.set_num_threads.")
_PROFILE_STAGES = flags.DEFINE_list(
    "profile_stages", ["generator"], "AV-digits stages whose step section 5 "
    "profiles (each traced --stage_repeats times).")
_PROFILE_DEPTH = flags.DEFINE_integer(
    "profile_depth", 3, "Source-path components that name a model part "
    "('VisualModel.features/VisualModel._frame_features/conv_layers_1').")
_PROFILE_TOP = flags.DEFINE_integer("profile_top", 12,
                                    "Model parts listed per profiled stage.")
_UPSAMPLE = flags.DEFINE_enum(
    "upsample", "zeros", ["zeros", "nn"],
    "Sections 1-2's generators: the paper's transposed convolutions, or "
    "the default experiment's repeat and stride-1 convolution.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the results as JSON.")


errors.define_debug_flag()


def run(argv):
  """Runs the flagged sections, prints the table; returns the results."""
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    results = sections.run_all(
        _SECTIONS.value, dim=_DIM.value, slice_len=_SLICE_LEN.value,
        batch_size=_BATCH_SIZE.value, repeats=_REPEATS.value,
        sample_rate=_SAMPLE_RATE.value, matmul_size=_MATMUL_SIZE.value,
        stage_config=_STAGE_CONFIG.value, stage_repeats=_STAGE_REPEATS.value,
        wavegan_config=_WAVEGAN_CONFIG.value, manual_dir=_MANUAL_DIR.value,
        data_dir=_DATA_DIR.value, pipeline_batches=_PIPELINE_BATCHES.value,
        conv_impl=_CONV_IMPL.value, compare_impls=_COMPARE_IMPLS.value,
        torch_threads=_TORCH_THREADS.value,
        profile_stages=_PROFILE_STAGES.value,
        profile_depth=_PROFILE_DEPTH.value, profile_top=_PROFILE_TOP.value,
        upsample=_UPSAMPLE.value)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  print(report.format_table(results))
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(results, f, indent=2)
  return results


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file at INFO.
  run(argv)


if __name__ == "__main__":
  app.run(errors.cli_main(main), flags_parser=sweeps.parse_flags)
