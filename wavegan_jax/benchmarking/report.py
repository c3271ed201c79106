"""The benchmark results as printable text tables."""

from wavegan_jax.benchmarking.twins import WORKLOADS


def _wavegan_table(results):
  lines = [f"{'implementation':<16}" + "".join(f"{w:>12}" for w in WORKLOADS)
           + f"{'params G/D':>24}"]
  for name, per in results["medians"].items():
    counts = results["param_counts"][name]
    lines.append(f"{name:<16}" + "".join(f"{per[w]:>11.3f}s"
                                         for w in WORKLOADS)
                 + f"{counts['generator']:>13,}/{counts['discriminator']:,}")
  primary = results["jax_impl"]
  lines.append(f"{'torch / ' + primary:<16}" + "".join(
      f"{results['ratio_' + w]:>11.2f}x" for w in WORKLOADS))
  lines.append(f"{'round min-max':<16}" + "".join(
      f"{'{:.2f}-{:.2f}'.format(*results[f'ratio_{w}_rounds']):>12}"
      for w in WORKLOADS))
  if "ratio_generate_bf16" in results:
    lines.append(f"{'torch / jax bf16':<16}" + "".join(
        f"{results[f'ratio_{w}_bf16']:>11.2f}x" for w in WORKLOADS))
  for name in results["medians"]:
    if name not in (primary, "torch") and not name.endswith("_bf16"):
      impl = name.removeprefix("jax_")
      lines.append(f"{name + ' / ' + primary:<16}" + "".join(
          f"{results[f'ratio_{w}_{impl}']:>11.2f}x" for w in WORKLOADS))
  for name, per in results["compile_seconds"].items():
    if name.startswith("jax"):
      lines.append(f"compile {name}: " + ", ".join(
          f"{w} {per[w]:.1f}s" for w in WORKLOADS))
  return lines


def _number(value, spec):
  return "n/a" if value is None else format(value, spec)


def format_table(results):
  """Every section that ran as printable text tables."""
  lines = []
  if "host" in results:
    host = results["host"]
    lines.append(f"host: {host['cpu']}, {host['logical_cores']} logical "
                 f"cores, {' '.join(host['simd']) or 'no AVX2/AVX-512'}")
  if "medians" in results:
    lines += ["== 1. WaveGAN, JAX vs PyTorch (median seconds) =="]
    config = results.get("config", {})
    if "dim" in config:
      lines.append(f"model: d={config['dim']}, {config['slice_len']} "
                   f"samples, batch {config['batch_size']}, upsample "
                   f"{config.get('upsample', 'zeros')}")
    if "torch_device" in config:
      lines.append(f"devices: JAX {config['jax_device']} "
                   f"({config['jax_backend']}), PyTorch "
                   f"{config['torch_device']}")
    lines += _wavegan_table(results)
  if "generation" in results:
    g = results["generation"]
    lines += [
        f"== 2. Generation ({g['jax_impl']}) ==",
        f"clips/s {g['clips_per_s']:.1f}, real-time factor "
        f"{g['real_time_factor']:.1f}x at {g['sample_rate']} Hz "
        f"({g['seconds']:.3f} s per batch)",
        f"achieved {g['gflops']:.1f} GFLOP/s (analytic count of the dense "
        f"+ transposed convs; XLA cost analysis: "
        f"{_number(g['gflops_xla'], '.1f')} GFLOP/s)",
        f"float32 matmul peak {g['peak_gflops']:.1f} GFLOP/s "
        f"(n={g['matmul_size']}); fraction {g['generate_peak_fraction']:.2f}"]
  if "roofline" in results:
    lines += ["== Roofline: analytic FLOPs against the matmul peak ==",
              f"{'workload':<10}{'GFLOP':>8}{'torch GF/s':>12}"
              f"{'jax GF/s':>10}{'torch/peak':>12}{'jax/peak':>10}"
              f"{'ceiling':>9}"]
    for name, r in results["roofline"].items():
      lines.append(f"{name:<10}{r['flops'] / 1e9:>8.1f}"
                   f"{r['torch_gflops']:>12.1f}{r['jax_gflops']:>10.1f}"
                   f"{r['torch_peak_fraction']:>12.2f}"
                   f"{r['jax_peak_fraction']:>10.2f}{r['ceiling']:>8.2f}x")
    lines.append("ceiling = peak / torch GFLOP/s: the most an "
                 "implementation of the direct arithmetic can beat PyTorch "
                 "by; Fourier and Winograd layers do fewer FLOPs than this "
                 "count, so jax/peak can pass 1")
  if "stages" in results:
    lines += ["== 3. AV-digits train steps (synthetic batches) ==",
              f"{'stage':<12}{'batch':>6}{'step':>10}{'examples/s':>12}"
              f"{'compile':>10}{'full step':>11}"]
    for name, s in results["stages"].items():
      full = s.get("full_step_seconds")
      lines.append(f"{name:<12}{s['batch_size']:>6}{s['step_seconds']:>9.3f}s"
                   f"{s['examples_per_s']:>12.1f}"
                   f"{s['compile_seconds']:>9.1f}s"
                   f"{'-' if full is None else f'{full:.3f}s':>11}")
    lines.append("step: with the visual CNN on its frame budget where the "
                 "stage has one (per clip 14 of 32 frames non-empty, 8 "
                 "distinct); full step: every frame")
  if "pipeline" in results:
    p = results["pipeline"]
    lines += ["== 4. Input pipeline vs train-step consumption (examples/s) ==",
              f"{'stage':<12}{'data set':<14}{'batch':>6}{'pipeline':>10}"
              f"{'consumed':>10}{'ratio':>8}"]
    for name, s in p["streams"].items():
      lines.append(f"{name:<12}{s['dataset']:<14}{s['batch_size']:>6}"
                   f"{s['pipeline_examples_per_s']:>10.1f}"
                   f"{_number(s['consumed_examples_per_s'], '.1f'):>10}"
                   f"{_number(s['ratio'], '.1f'):>8}")
    for name, reason in p["skipped"].items():
      lines.append(f"{name}: skipped ({reason})")
  for name, p in results.get("profile", {}).items():
    lines += [f"== 5. Where the {name} step's time goes "
              f"({'fast step' if p['fast_step'] else 'step'}) ==",
              f"wall {p['wall_ms']:.1f} ms per step under the profiler, "
              f"op time {p['op_ms']:.1f} ms: {p['busy_cores']:.2f} cores "
              "busy",
              f"{'pass':<9}{'ms':>8}{'share':>7}  part"]
    for part in p["parts"]:
      lines.append(f"{part['pass']:<9}{part['ms']:>8.1f}"
                   f"{part['fraction']:>7.1%}  {part['part']}")
  lines.append(
      f"generate_peak_fraction "
      f"{_number(results['generate_peak_fraction'], '.2f')}, "
      f"pipeline_over_consumption_min "
      f"{_number(results['pipeline_over_consumption_min'], '.1f')}")
  return "\n".join(lines)
