"""Benchmarks of this project's JAX code, as library functions.

launch/benchmark.py is the entry point and sections.py's `run_all` runs
the sections:
  wavegan:    WaveGAN d=64 generate / generator step / WGAN-GP critic step in
              JAX and in a PyTorch model of exactly the same architecture,
              timed alternately (twins.py);
  generation: clips/s, real-time factor and achieved GFLOP/s of generation
              next to a float32 matrix-product peak measured in the same run
              (throughput.py);
  stages:     the AV-digits stages' train steps at batch 16 (av_stages.py);
  pipeline:   the input pipelines' examples/s next to what the steps consume
              (av_stages.py);
  profile:    where the AV-digits steps' time goes, per pass and model part,
              from a jax.profiler trace (profile.py).
Warm-up is excluded, compile time reported separately, times are medians.
PyTorch is imported only when the wavegan section runs.
"""
