"""Sections 3 and 4: AV-digits train steps and the input pipelines."""

import statistics
import tempfile
import time

from absl import logging
import jax
import numpy as np

from wavegan_jax.benchmarking import profile
from wavegan_jax.training import checkpointing
from wavegan_jax.training.stages import autoencoders
from wavegan_jax.training.stages import generator as generator_stage
from wavegan_jax.training.stages import wavegan as wavegan_stage

AV_STAGES = ("acoustic", "visual", "generator")


# Non-empty frames per AV-digits clip (14.2 of 32 on average over 201 train
# batches): the others are all zero, as before a digit appears.
NONEMPTY_FRAMES = 14
# Distinct non-empty frames per clip: the digit sits still or steps by a
# pixel, so a batch of 16 clips holds ~128 distinct frames (one all zero).
DISTINCT_FRAMES = 8


def _synthetic_batch(config, batch_size, seed):
  """A random batch of every field the AV-digits stages read.

  Like AV-digits clips, each clip's video is all zero outside a window of
  NONEMPTY_FRAMES frames at a random onset, and the window holds
  DISTINCT_FRAMES random frames in runs.
  """
  data = config.data
  generator = np.random.default_rng(seed)
  size = data.frame_size
  window = min(NONEMPTY_FRAMES, data.num_frames)
  video = np.zeros((batch_size, data.num_frames, size, size, 1), np.uint8)
  for clip, onset in enumerate(generator.integers(
      0, data.num_frames - window + 1, batch_size)):
    frames = generator.integers(1, 256, (DISTINCT_FRAMES, size, size, 1),
                                dtype=np.uint8)
    # Each frame held for a run of frames, as the digit sits then steps.
    video[clip, onset:onset + window] = frames[
        np.arange(window) * DISTINCT_FRAMES // window]
  return {
      "video": video,
      "target": generator.uniform(-0.5, 0.5, (batch_size, data.num_samples)
                                  ).astype(np.float32),
      "reference": generator.uniform(-0.5, 0.5, (batch_size, data.num_samples)
                                     ).astype(np.float32),
  }


def av_stage_specs(config, workdir, manual_dir=None, data_dir=None):
  """The three AV-digits StageSpecs; the encoders exported at init.

  The generator stage restores the encoders from their exports, so freshly
  initialised encoder params are exported into `workdir` first (timing needs
  no training).
  """
  specs = {}
  for name in AV_STAGES[:2]:
    specs[name] = autoencoders.make_spec(config, name, manual_dir=manual_dir,
                                         data_dir=data_dir)
    checkpointing.export_params(checkpointing.export_path(workdir, name),
                                specs[name].export_fn(specs[name].init_fn()))
  specs["generator"] = generator_stage.make_spec(
      config, workdir, manual_dir=manual_dir, data_dir=data_dir)
  return specs


def _time_step(step_fn, state, batch, base_rng, repeats):
  """(compile seconds, median step seconds, final state) of a jitted step."""
  start = time.perf_counter()
  step = jax.jit(step_fn, donate_argnums=(0,)).lower(
      state, batch, base_rng).compile()
  compile_seconds = time.perf_counter() - start
  times = []
  for i in range(repeats + 1):  # The first call is the warm-up.
    start = time.perf_counter()
    state, metrics = step(state, batch, jax.random.fold_in(base_rng, i))
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  return compile_seconds, statistics.median(times[1:]), state


def _timed_step(spec, config):
  """(step function, synthetic batch, whether it is the fast step)."""
  batch = _synthetic_batch(config, spec.train_config.batch_size, spec.seed)
  fast = spec.fast_step_fn is not None and spec.fast_step_fits(batch)
  return (spec.fast_step_fn if fast else spec.step_fn), batch, fast


def stage_steps(config, repeats):
  """Section 3: each AV-digits stage's jitted train step on synthetic data.

  A stage with a fast step (the visual CNN on a frame budget) that fits the
  batch is timed with it, and with its full step for comparison.

  Args:
    config: an experiments/av_digits.py config.
    repeats: timed steps per stage.

  Returns:
    {stage: {batch_size, compile_seconds, step_seconds (median),
    examples_per_s, fast_step (whether step_seconds is the fast step's),
    full_step_seconds (the full step's median; None without a fast
    step)}}.
  """
  results = {}
  with tempfile.TemporaryDirectory() as workdir:
    specs = av_stage_specs(config, workdir)
    for name, spec in specs.items():
      batch_size = spec.train_config.batch_size
      step_fn, batch, fast = _timed_step(spec, config)
      base_rng = jax.random.PRNGKey(spec.seed)
      state = spec.init_fn()
      full_seconds = None
      if fast:
        _, full_seconds, state = _time_step(spec.step_fn, state, batch,
                                            base_rng, repeats)
      compile_seconds, seconds, _ = _time_step(step_fn, state, batch,
                                               base_rng, repeats)
      results[name] = {"batch_size": batch_size,
                       "compile_seconds": compile_seconds,
                       "step_seconds": seconds,
                       "examples_per_s": batch_size / seconds,
                       "fast_step": fast,
                       "full_step_seconds": full_seconds}
  return results


def check_profile_stages(stages):
  """Raises ValueError naming any stage that is not an AV-digits stage."""
  unknown = [name for name in stages if name not in AV_STAGES]
  if unknown or not stages:
    raise ValueError(f"Stages to profile must be some of "
                     f"{','.join(AV_STAGES)}; got {list(stages)}")


def stage_profiles(config, stages, repeats, depth, top):
  """Section 5: where each named stage's train step spends its time.

  The step timed in section 3 (the fast one where the batch fits) runs
  `repeats` times under the profiler (profile.profile_step).

  Returns:
    {stage: profile.profile_step's result plus 'fast_step'}.

  Raises:
    ValueError: a stage that is not an AV-digits stage.
  """
  check_profile_stages(stages)
  results = {}
  with tempfile.TemporaryDirectory() as workdir:
    specs = av_stage_specs(config, workdir)
    for name in stages:
      spec = specs[name]
      step_fn, batch, fast = _timed_step(spec, config)
      results[name] = {
          **profile.profile_step(
              jax.jit(step_fn, donate_argnums=(0,)),
              (spec.init_fn(), batch, jax.random.PRNGKey(spec.seed)),
              repeats, depth=depth, top=top),
          "fast_step": fast}
  return results


def pipeline_examples_per_s(make_batches, batch_size, num_batches):
  """Examples/s of a host batch stream, after one warm-up batch.

  The warm-up batch pays for preparing the data set (when not prepared)
  and for filling tf.data's buffers; it is excluded.
  """
  batches = make_batches(0)
  next(batches)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(batches)
  return num_batches * batch_size / (time.perf_counter() - start)


def wavegan_consumption(wavegan_results, d_steps):
  """Examples/s a WaveGAN train step consumes, from section 1's medians.

  A WaveGAN stage step at per-update batch b reads d_steps * b real
  examples and runs d_steps critic updates and one generator update, each
  on b examples; at section 1's b that is
  d_steps * b / (d_steps * t_d_step + t_g_step) examples/s.
  """
  medians = wavegan_results["medians"][wavegan_results["jax_impl"]]
  return (d_steps * wavegan_results["config"]["batch_size"]
          / (d_steps * medians["d_step"] + medians["g_step"]))


def pipeline(stage_config, wavegan_config, manual_dir, data_dir,
             num_batches, stage_results=None, wavegan_results=None):
  """Section 4: input pipelines against what the train steps consume.

  Args:
    stage_config: the av_digits config (its train batch and fields).
    wavegan_config: the experiments/wavegan.py config (audio_folder, FSDD).
    manual_dir: the raw data folder (None: only prepared data is used).
    data_dir: the TFDS data dir (None: TFDS's default).
    num_batches: timed batches per stream.
    stage_results: section 3's results, for the AV-digits consumption.
    wavegan_results: section 1's results, for the WaveGAN consumption.

  Returns:
    {'streams': {stage: {dataset, batch_size, pipeline_examples_per_s,
    consumed_examples_per_s (None when its section did not run), ratio}},
    'skipped': {stage: reason}, 'pipeline_over_consumption_min': the least
    ratio (None when none could be formed)}.
  """
  streams, skipped = {}, {}
  with tempfile.TemporaryDirectory() as workdir:
    try:
      specs = av_stage_specs(stage_config, workdir, manual_dir, data_dir)
      specs["wavegan"] = wavegan_stage.make_spec(
          wavegan_config, manual_dir=manual_dir, data_dir=data_dir)
    except Exception as error:  # pylint: disable=broad-except
      return {"streams": {}, "skipped": {"all": repr(error)},
              "pipeline_over_consumption_min": None}
    for name, spec in specs.items():
      batch_size = spec.train_config.batch_size
      if name == "wavegan":  # A step reads d_steps per-update batches.
        batch_size *= wavegan_config.wavegan.adversarial.d_steps
      try:
        produced = pipeline_examples_per_s(spec.make_batches, batch_size,
                                           num_batches)
      except Exception as error:  # pylint: disable=broad-except
        logging.warning("pipeline %s skipped: %r", name, error)
        skipped[name] = repr(error)
        continue
      if name == "wavegan":
        config = wavegan_config
        consumed = wavegan_results and wavegan_consumption(
            wavegan_results, wavegan_config.wavegan.adversarial.d_steps)
      else:
        config = stage_config
        consumed = stage_results and stage_results[name]["examples_per_s"]
      streams[name] = {
          "dataset": config.data.name, "batch_size": batch_size,
          "pipeline_examples_per_s": produced,
          "consumed_examples_per_s": consumed,
          "ratio": consumed and produced / consumed}
  ratios = [s["ratio"] for s in streams.values() if s["ratio"]]
  return {"streams": streams, "skipped": skipped,
          "pipeline_over_consumption_min": min(ratios) if ratios else None}
