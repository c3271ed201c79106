"""Runs launch/benchmark.py at tiny sizes, every section (no timing asserts)."""

import json
import math
import os
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import jax
import numpy as np
import pytest

from tests.conftest import load_launch_script
from wavegan_jax.benchmarking import report
from wavegan_jax.benchmarking import sections
from wavegan_jax.benchmarking import throughput
from wavegan_jax.benchmarking import twins
from wavegan_jax.models import wavegan


def _positive(value):
  return isinstance(value, float) and math.isfinite(value) and value > 0


def test_analytic_generator_flops_by_hand():
  # d=1, 16384: dense 100 -> 16*16; convs 16->8->4->2->1->1 at lengths
  # 16, 64, 256, 1024, 4096, each 2 * length * 25 * C_in * C_out, batch 3.
  convs = 2 * 25 * (16 * 16 * 8 + 64 * 8 * 4 + 256 * 4 * 2 + 1024 * 2 * 1
                    + 4096 * 1 * 1)
  assert throughput.generator_flops(1, 16384, 3) == 3 * (
      2 * 100 * 256 + convs)


def test_analytic_nn_generator_flops_count_taps_at_the_upsampled_rate():
  # d=1, 16384, nn: each stride-1 convolution runs at its output length
  # 64, 256, 1024, 4096, 16384 (the repeat first, as PyTorch runs it).
  convs = 2 * 25 * (64 * 16 * 8 + 256 * 8 * 4 + 1024 * 4 * 2 + 4096 * 2 * 1
                    + 16384 * 1 * 1)
  assert throughput.generator_flops(1, 16384, 3, "nn") == 3 * (
      2 * 100 * 256 + convs)


def test_torch_nn_generator_twin_equals_the_jax_generator():
  # The nn twin is the default experiment's generator exactly (same
  # weights, same output); the zero-insertion twin runs the same arithmetic
  # with PyTorch's own alignment of the transposed convolution's window.
  upsample = "nn"
  torch = twins._torch()
  generator = wavegan.WaveGANGenerator(dim=2, slice_len=8192,
                                       upsample=upsample)
  z = np.random.default_rng(0).uniform(-1, 1, (2, 100)).astype(np.float32)
  params = generator.init(jax.random.key(0), z)["params"]
  twin = twins._torch_models()[0](2, 8192, upsample)
  with torch.no_grad():
    twin.z_project.weight.copy_(torch.from_numpy(
        np.asarray(params["z_project"]["kernel"]).T.copy()))
    twin.z_project.bias.copy_(torch.from_numpy(
        np.array(params["z_project"]["bias"])))
    for i, layer in enumerate(twin.upconvs):
      kernel = np.asarray(params[f"upconv_{i}"]["kernel"])  # [K, Cin, Cout]
      # Conv1d's weight is [Cout, Cin, K], a correlation as lax's.
      layer.weight.copy_(torch.from_numpy(kernel.transpose(2, 1, 0).copy()))
      layer.bias.copy_(torch.from_numpy(
          np.array(params[f"upconv_{i}"]["bias"])))
    by_torch = twin(torch.from_numpy(z)).numpy()[:, 0]
  by_jax = np.asarray(generator.apply({"params": params}, z))[..., 0]
  assert by_torch.shape == by_jax.shape == (2, 8192)
  np.testing.assert_allclose(by_torch, by_jax, atol=1e-5)


def test_analytic_discriminator_flops_by_hand():
  # d=1, 16384: convs 1->1->2->4->8->16 at output lengths 4096, 1024, 256,
  # 64, 16, each 2 * length_out * 25 * C_in * C_out; dense 16*16 -> 1.
  convs = 2 * 25 * (4096 * 1 * 1 + 1024 * 1 * 2 + 256 * 2 * 4 + 64 * 4 * 8
                    + 16 * 8 * 16)
  assert throughput.discriminator_flops(1, 16384, 3) == 3 * (
      convs + 2 * 16 * 16)


def test_roofline_ceiling_is_peak_over_torch_rate():
  results = {"config": {"dim": 1, "slice_len": 16384, "batch_size": 2},
             "jax_impl": "jax_winograd",
             "medians": {"torch": {"generate": 0.5, "g_step": 2.0},
                         "jax_winograd": {"generate": 0.25, "g_step": 4.0},
                         "jax_fast": {"generate": 9.0, "g_step": 9.0}}}
  g = throughput.generator_flops(1, 16384, 2)
  d = throughput.discriminator_flops(1, 16384, 2)
  roof = throughput.roofline(results, peak_gflops=1e-3)
  assert roof["generate"]["torch_gflops"] == pytest.approx(g / 0.5 / 1e9)
  assert roof["generate"]["jax_peak_fraction"] == pytest.approx(
      g / 0.25 / 1e9 / 1e-3)
  assert roof["generate"]["ceiling"] == pytest.approx(1e-3 / (g / 0.5 / 1e9))
  assert roof["g_step"]["flops"] == 3 * g + 2 * d
  assert roof["g_step"]["ceiling"] == pytest.approx(
      1e-3 * 2.0 / ((3 * g + 2 * d) / 1e9))


def test_round_ratios_pair_each_round():
  # Rounds: torch 2.0 / jax 1.0, torch 3.0 / jax 1.5, torch 1.0 / jax 2.0.
  assert twins.round_ratios([2.0, 3.0, 1.0], [1.0, 1.5, 2.0]) == (
      0.5, 2.0)
  with pytest.raises(ValueError):  # One side missed a round.
    twins.round_ratios([1.0, 2.0], [1.0])


def test_host_info_reads_cpuinfo(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                     "flags\t\t: fpu sse2 avx fma avx2 bmi2\n\n"
                     "processor\t: 1\nmodel name\t: Test CPU 9000\n"
                     "flags\t\t: fpu sse2 avx fma avx2 bmi2\n")
  host = sections.host_info(str(cpuinfo))
  assert host == {"cpu": "Test CPU 9000", "logical_cores": os.cpu_count(),
                  "simd": ["avx2", "fma"]}
  # No /proc/cpuinfo (macOS, Windows): the platform's name, no flags.
  assert sections.host_info(str(tmp_path / "missing"))["simd"] == []


def test_library_imports_without_torch():
  # A fresh interpreter: importing the library must not import torch.
  code = ("import sys, wavegan_jax.benchmarking.sections; "
          "print('torch' in sys.modules)")
  completed = subprocess.run([sys.executable, "-c", code], check=True,
                             capture_output=True, text=True)
  assert completed.stdout.strip() == "False"


def test_unknown_section_is_named():
  with pytest.raises(ValueError, match=r"Unknown benchmark sections \['gpu'\]"):
    sections.run_all(["gpu"], dim=4, slice_len=16384, batch_size=2,
                     repeats=1, sample_rate=16000, matmul_size=8,
                     stage_config=None, stage_repeats=1,
                     wavegan_config=None, manual_dir=None, data_dir=None,
                     pipeline_batches=1)


def test_unknown_upsampling_is_named():
  with pytest.raises(ValueError, match="upsample must be one of"):
    twins.wavegan_side_by_side(dim=2, slice_len=8192, batch_size=2,
                               repeats=1, upsample="linear")


def test_unknown_convolution_implementation_is_named():
  with pytest.raises(ValueError, match=r"implementation 'fft'.*winograd"):
    twins.wavegan_side_by_side(4, 16384, 2, 1, compare_impls=("fft",))


def test_pipeline_without_data_is_skipped_with_null_key():
  results = sections.run_all(
      ["pipeline"], dim=4, slice_len=16384, batch_size=2, repeats=1,
      sample_rate=16000, matmul_size=8, stage_config=None, stage_repeats=1,
      wavegan_config=None, manual_dir=None, data_dir=None, pipeline_batches=1)
  assert results["pipeline_over_consumption_min"] is None
  assert "no data" in results["pipeline"]["skipped"]["all"]


@pytest.mark.slow
def test_tiny_benchmark_every_section(tmp_path, manual_dir,
                                      av_digits_data_dir):
  benchmark = load_launch_script("benchmark")
  output = tmp_path / "benchmark.json"
  with flagsaver.flagsaver():
    flags.FLAGS(["benchmark", "--dim=4", "--slice_len=16384",
                 "--batch_size=2", "--repeats=1", "--matmul_size=64",
                 "--stage_config=experiments/av_digits.py:tiny",
                 "--wavegan_config=experiments/wavegan.py:tiny",
                 "--stage_repeats=1", "--pipeline_batches=2",
                 f"--manual_dir={manual_dir}",
                 f"--data_dir={av_digits_data_dir}", f"--output={output}"])
    returned = benchmark.run(["benchmark"])
  results = json.loads(output.read_text())
  assert results["sections"] == list(sections.SECTIONS)
  assert results["host"] == sections.host_info()
  # Section 1.
  # The default convolutions against PyTorch, 'winograd' (--compare_impls's
  # default) timed beside them.
  assert results["jax_impl"] == "jax_fourier"
  assert set(results["medians"]) == {"jax_fourier", "jax_winograd", "torch"}
  for workload in ("generate", "g_step", "d_step"):
    ratio = results[f"ratio_{workload}"]
    assert _positive(ratio)
    medians = results["medians"]
    assert ratio == (medians["torch"][workload]
                     / medians["jax_fourier"][workload])
    assert results[f"ratio_{workload}_winograd"] == (
        medians["jax_winograd"][workload] / medians["jax_fourier"][workload])
    times = results["times"]
    low, high = results[f"ratio_{workload}_rounds"]
    assert (low, high) == twins.round_ratios(
        times["torch"][workload], times["jax_fourier"][workload])
    assert low <= ratio <= high
  # d=4: G = 100*16*64 + 16*64 + sum of 25*Cin*Cout + Cout over the layers.
  for name in ("jax_fourier", "jax_winograd", "torch"):
    assert results["param_counts"][name] == {"generator": 171_585,
                                             "discriminator": 69_249}
  # Section 2.
  generation = results["generation"]
  for key in ("clips_per_s", "real_time_factor", "gflops", "peak_gflops",
              "generate_peak_fraction"):
    assert _positive(generation[key]), key
  assert generation["flops_analytic"] == throughput.generator_flops(
      4, 16384, 2)
  assert generation["real_time_factor"] == pytest.approx(
      generation["clips_per_s"] * 16384 / 16000)
  assert results["generate_peak_fraction"] == pytest.approx(
      generation["gflops"] / generation["peak_gflops"])
  for workload in ("generate", "g_step"):
    roof = results["roofline"][workload]
    assert roof["ceiling"] == pytest.approx(
        generation["peak_gflops"] / roof["torch_gflops"])
  # Section 3: the tiny config's batch is 4.
  assert set(results["stages"]) == {"acoustic", "visual", "generator"}
  for stage in results["stages"].values():
    assert stage["batch_size"] == 4
    assert _positive(stage["step_seconds"])
    assert _positive(stage["compile_seconds"])
    assert stage["examples_per_s"] == pytest.approx(4 / stage["step_seconds"])
  # The tiny batch's non-empty frames fit the visual CNN's budget.
  assert {name: stage["fast_step"] for name, stage in
          results["stages"].items()} == {
              "acoustic": False, "visual": True, "generator": True}
  assert results["stages"]["acoustic"]["full_step_seconds"] is None
  assert _positive(results["stages"]["visual"]["full_step_seconds"])
  # Section 4: every stream, its consumption from sections 1 and 3.
  streams = results["pipeline"]["streams"]
  assert set(streams) == {"acoustic", "visual", "generator", "wavegan"}
  assert results["pipeline"]["skipped"] == {}
  for name, stream in streams.items():
    assert _positive(stream["pipeline_examples_per_s"]), name
    assert stream["ratio"] == pytest.approx(
        stream["pipeline_examples_per_s"] / stream["consumed_examples_per_s"])
  assert streams["wavegan"]["dataset"] == "audio_folder"
  # wavegan.py:tiny: 2 critic updates of 2 examples per step.
  assert streams["wavegan"]["batch_size"] == 4
  assert streams["visual"]["consumed_examples_per_s"] == (
      results["stages"]["visual"]["examples_per_s"])
  assert results["pipeline_over_consumption_min"] == min(
      s["ratio"] for s in streams.values())
  # Section 5: the generator (--profile_stages's default), its fast step.
  assert set(results["profile"]) == {"generator"}
  generator = results["profile"]["generator"]
  assert generator["fast_step"] is True
  assert _positive(generator["wall_ms"]) and _positive(generator["op_ms"])
  assert sum(p["ms"] for p in generator["parts"]) == pytest.approx(
      generator["op_ms"])
  parts = {p["part"] for p in generator["parts"]}
  assert any(part.startswith("AVGenerator") for part in parts), parts
  assert returned["config"]["batch_size"] == 2


class _FakeCuda:
  """torch.cuda as seen on a host with one GPU."""

  @staticmethod
  def is_available():
    return True

  @staticmethod
  def get_device_name(index):
    return f"Fake GPU {index}"


def test_torch_device_selection(monkeypatch):
  torch = twins._torch()
  monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
  device, name = twins.torch_device(torch)
  assert device == "cpu" and name
  assert twins.compute_dtypes(device) == ("float32",)
  monkeypatch.setattr(torch, "cuda", _FakeCuda)
  assert twins.torch_device(torch) == ("cuda", "Fake GPU 0")
  assert twins.compute_dtypes("cuda") == ("float32", "bfloat16")


def test_side_by_side_runs_float32_and_bfloat16_pairs(monkeypatch):
  """The GPU branch's runners and ratios, here on CPU: PyTorch's device
  is the CPU (no GPU seen), both precisions forced."""
  torch = twins._torch()
  monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
  monkeypatch.setattr(twins, "compute_dtypes",
                      lambda device: ("float32", "bfloat16"))
  # The default experiment's nn generators (tiny_benchmark: the paper's).
  results, runner = twins.wavegan_side_by_side(
      dim=2, slice_len=8192, batch_size=2, repeats=1, conv_impl="fast",
      upsample="nn")
  assert runner.name == "jax_fast"
  assert results["config"]["upsample"] == "nn"
  roof = throughput.roofline(results, peak_gflops=1.0)
  assert roof["generate"]["flops"] == throughput.generator_flops(
      2, 8192, 2, "nn")
  assert set(results["medians"]) == {"jax_fast", "jax_fast_bf16", "torch",
                                     "torch_bf16"}
  assert results["config"]["torch_device_type"] == "cpu"
  assert results["config"]["jax_device"] == "cpu"
  assert results["config"]["compute_dtypes"] == ["float32", "bfloat16"]
  medians = results["medians"]
  for workload in ("generate", "g_step", "d_step"):
    assert results[f"ratio_{workload}_bf16"] == (
        medians["torch_bf16"][workload] / medians["jax_fast_bf16"][workload])
    assert results[f"ratio_{workload}"] == (
        medians["torch"][workload] / medians["jax_fast"][workload])
  # The top-level keys `sections.run_all` adds beside the section's.
  table = report.format_table(
      {**results, "generate_peak_fraction": None,
       "pipeline_over_consumption_min": None})
  assert "devices: JAX cpu (cpu), PyTorch " in table
  assert "model: d=2, 8192 samples, batch 2, upsample nn" in table
  assert "torch / jax bf16" in table
