"""Section 2: generation throughput against the float32 matmul peak."""

import statistics
import time

import jax
import jax.numpy as jnp

from wavegan_jax.benchmarking.twins import KERNEL_LEN
from wavegan_jax.benchmarking.twins import LATENT_DIM
from wavegan_jax.models import wavegan


def _median_seconds(fn, repeats):
  """Median wall time of `repeats` calls of fn (which must block)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def matmul_peak_gflops(size, repeats):
  """Float32 [size, size] @ [size, size] through jit: median GFLOP/s."""
  a, b = jax.random.normal(jax.random.key(0), (2, size, size), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, b))
  seconds = _median_seconds(lambda: jax.block_until_ready(matmul(a, b)),
                            repeats)
  return 2.0 * size ** 3 / seconds / 1e9


def generator_flops(dim, slice_len, batch_size, upsample="zeros"):
  """Analytic FLOPs of one WaveGAN generator call (multiply-add = 2).

  The dense projection and each transposed convolution (every input sample
  meets all kernel taps: 2 * length_in * kernel * C_in * C_out), or with
  upsample='nn' each stride-1 convolution after the repeat, as PyTorch
  runs it (every upsampled sample meets all taps: stride times as many);
  activations and bias adds are left out.
  """
  length, channels, layers = wavegan.generator_layout(slice_len, dim, 1)
  flops = 2 * LATENT_DIM * length * channels
  for features, stride in layers:
    taps_at = length * stride if upsample == "nn" else length
    flops += 2 * taps_at * KERNEL_LEN * channels * features
    length, channels = length * stride, features
  return float(batch_size * flops)


def discriminator_flops(dim, slice_len, batch_size):
  """Analytic FLOPs of one WaveGAN discriminator call (multiply-add = 2).

  Each strided convolution (2 * length_out * kernel * C_in * C_out) and the
  final dense layer.
  """
  length, channels, flops = slice_len, 1, 0
  for features, stride in wavegan.discriminator_layout(slice_len, dim):
    length = -(-length // stride)
    flops += 2 * length * KERNEL_LEN * channels * features
    channels = features
  return float(batch_size * (flops + 2 * length * channels))


def roofline(wavegan_results, peak_gflops):
  """How far direct convolution can go past PyTorch on this machine.

  With the analytic FLOP counts, PyTorch's achieved GFLOP/s and the measured
  float32 matmul peak, `ceiling_<workload>` = peak / PyTorch GFLOP/s is the
  largest PyTorch / JAX ratio any implementation that does the same
  arithmetic can reach: the ratio target is unreachable where it is below
  it. Generate = one generator call (G); the generator step = G forward, D
  forward, D input gradient and the G backward (input and kernel
  gradients), about 3 G + 2 D.

  Args:
    wavegan_results: section 1's results.
    peak_gflops: the float32 matmul peak of the same run.

  Returns:
    {workload: {flops, torch_gflops, jax_gflops, torch_peak_fraction,
    jax_peak_fraction, ceiling}} for 'generate' and 'g_step'.
  """
  config = wavegan_results["config"]
  shape = (config["dim"], config["slice_len"], config["batch_size"])
  g = generator_flops(*shape, config.get("upsample", "zeros"))
  d = discriminator_flops(*shape)
  flops = {"generate": g, "g_step": 3 * g + 2 * d}
  medians = wavegan_results["medians"]
  out = {}
  for workload, count in flops.items():
    torch_gflops = count / medians["torch"][workload] / 1e9
    jax_gflops = count / medians[wavegan_results["jax_impl"]][workload] / 1e9
    out[workload] = {
        "flops": count, "torch_gflops": torch_gflops,
        "jax_gflops": jax_gflops,
        "torch_peak_fraction": torch_gflops / peak_gflops,
        "jax_peak_fraction": jax_gflops / peak_gflops,
        "ceiling": peak_gflops / torch_gflops}
  return out


def _xla_flops(compiled):
  """FLOPs from XLA's cost analysis of a compiled program, or None."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def generation(runner, dim, slice_len, batch_size, sample_rate, repeats,
               matmul_size, upsample="zeros"):
  """Section 2: generation throughput against the matrix-product peak.

  Args:
    runner: a JaxWaveGAN at (dim, slice_len, batch_size).
    dim: model width d.
    slice_len: samples per clip.
    batch_size: clips per call.
    sample_rate: Hz, for the real-time factor.
    repeats: timed calls (also for the matmul peak).
    matmul_size: n of the n x n x n peak matrix product.
    upsample: the runner's generator upsampling (the analytic count).

  Returns:
    A dict: seconds (median per batch), clips_per_s, real_time_factor
    (seconds of audio per second of compute), flops_analytic, flops_xla
    (None when XLA gives none), gflops (achieved, analytic count),
    gflops_xla, peak_gflops, matmul_size, and generate_peak_fraction =
    gflops / peak_gflops.
  """
  runner.run("generate")  # Warm-up.
  seconds = _median_seconds(lambda: runner.run("generate"), repeats)
  peak = matmul_peak_gflops(matmul_size, repeats)
  flops = generator_flops(dim, slice_len, batch_size, upsample)
  xla_flops = _xla_flops(runner.compiled["generate"])
  gflops = flops / seconds / 1e9
  return {
      "jax_impl": runner.name, "seconds": seconds,
      "clips_per_s": batch_size / seconds,
      "real_time_factor": batch_size * slice_len / sample_rate / seconds,
      "sample_rate": sample_rate, "flops_analytic": flops,
      "flops_xla": xla_flops, "gflops": gflops,
      "gflops_xla": xla_flops and xla_flops / seconds / 1e9,
      "peak_gflops": peak, "matmul_size": matmul_size,
      "generate_peak_fraction": gflops / peak,
  }
