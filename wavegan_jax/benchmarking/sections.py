"""The sections of launch/benchmark.py and `run_all`, which runs them.

`run_all` runs the chosen sections in order in one process and gathers their
results with the host they timed (`host_info`); each section's work lives in
its own module (twins.py, throughput.py, av_stages.py, profile.py).
"""


import os

from wavegan_jax import host
from wavegan_jax.benchmarking import av_stages
from wavegan_jax.benchmarking import throughput
from wavegan_jax.benchmarking import twins
from wavegan_jax.models import wavegan

SECTIONS = ("wavegan", "generation", "stages", "pipeline", "profile")


def data_available(manual_dir, data_dir):
  """Why the pipeline section cannot run, or None when it can."""
  if manual_dir and os.path.isdir(manual_dir):
    return None
  if data_dir and os.path.isdir(data_dir):
    return None
  return (f"no data: --manual_dir ({manual_dir!r}, default "
          f"$WAVEGAN_MANUAL_DIR) and --data_dir ({data_dir!r}) are not "
          "folders")


# SIMD extensions that decide float32 throughput on x86 hosts.
_SIMD_FLAGS = ("avx2", "fma", "avx512f", "amx_tile")


def host_info(cpuinfo_path="/proc/cpuinfo"):
  """The CPU the run timed: {'cpu', 'logical_cores', 'simd'}.

  Timings, and even the PyTorch / JAX ratios, move between hosts: the
  same command gave ratios of 1.04-1.18 on one 2-core host and 1.25-1.77
  on another (docs/performance.md). Every result records which one it
  timed.
  """
  cpu, simd = host.cpu_and_flags(cpuinfo_path, _SIMD_FLAGS)
  return {"cpu": cpu, "logical_cores": os.cpu_count(), "simd": simd}


def run_all(sections, *, dim, slice_len, batch_size, repeats, sample_rate,
            matmul_size, stage_config, stage_repeats, wavegan_config,
            manual_dir, data_dir, pipeline_batches,
            conv_impl=wavegan.DEFAULT_CONV_IMPL, compare_impls=(),
            torch_threads=2, profile_stages=("generator",), profile_depth=3,
            profile_top=12, upsample="zeros"):
  """Runs the chosen sections in order in this process.

  Args:
    sections: names from SECTIONS.
    dim, slice_len, batch_size, repeats: section 1 (and 2's model).
    sample_rate: Hz of the generated clips (real-time factor).
    matmul_size: n of the peak matrix product.
    stage_config: the av_digits config (sections 3 and 4).
    stage_repeats: timed steps per AV-digits stage.
    wavegan_config: the wavegan config (section 4's audio_folder stream).
    manual_dir, data_dir: where the data is (section 4).
    pipeline_batches: timed batches per stream.
    conv_impl: the JAX convolutions of sections 1 and 2 (conv.py).
    compare_impls: section 1 also times these JAX convolutions.
    torch_threads: PyTorch intra-op threads.
    upsample: the generators' upsampling in sections 1 and 2.
    profile_stages: the AV-digits stages section 5 profiles.
    profile_depth: source-path components that name a model part.
    profile_top: parts listed per stage (the rest summed).

  Returns:
    A JSON-ready dict: section 1's keys at the top level (ratio_generate,
    ratio_g_step, ratio_d_step, medians, ...), 'generation', 'stages',
    'pipeline', 'profile' (the sections run), 'host' (`host_info`),
    generate_peak_fraction and
    pipeline_over_consumption_min (None when their section did not run or
    was skipped) and 'sections'.
  """
  unknown = set(sections) - set(SECTIONS)
  if unknown:
    raise ValueError(f"Unknown benchmark sections {sorted(unknown)}; "
                     f"expected some of {','.join(SECTIONS)}")
  if "profile" in sections:  # Before the long sections, not after them.
    av_stages.check_profile_stages(profile_stages)
  results = {"sections": list(sections), "host": host_info(),
             "generate_peak_fraction": None,
             "pipeline_over_consumption_min": None}
  wavegan_results = runner = None
  if "wavegan" in sections:
    wavegan_results, runner = twins.wavegan_side_by_side(
        dim, slice_len, batch_size, repeats, conv_impl, compare_impls,
        torch_threads, upsample)
    results.update(wavegan_results)
  if "generation" in sections:
    runner = runner or twins.JaxWaveGAN(dim, slice_len, batch_size, conv_impl,
                                        upsample=upsample)
    results["generation"] = throughput.generation(
        runner, dim, slice_len, batch_size, sample_rate, repeats, matmul_size,
        upsample)
    results["generate_peak_fraction"] = results["generation"][
        "generate_peak_fraction"]
    if wavegan_results:
      results["roofline"] = throughput.roofline(
          wavegan_results, results["generation"]["peak_gflops"])
  if "stages" in sections:
    results["stages"] = av_stages.stage_steps(stage_config, stage_repeats)
  if "pipeline" in sections:
    reason = data_available(manual_dir, data_dir)
    if reason:
      print(f"pipeline section skipped: {reason}")
      results["pipeline"] = {"streams": {}, "skipped": {"all": reason},
                             "pipeline_over_consumption_min": None}
    else:
      results["pipeline"] = av_stages.pipeline(
          stage_config, wavegan_config, manual_dir, data_dir,
          pipeline_batches, results.get("stages"), wavegan_results)
    results["pipeline_over_consumption_min"] = results["pipeline"][
        "pipeline_over_consumption_min"]
  if "profile" in sections:
    results["profile"] = av_stages.stage_profiles(
        stage_config, profile_stages, stage_repeats, profile_depth,
        profile_top)
  return results
