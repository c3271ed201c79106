"""Runs launch/benchmark.py's main on a tiny WaveGAN (no timing assertions)."""

import importlib.util
import json

from absl import flags
from absl.testing import flagsaver

from tests.conftest import REPO_ROOT


def _load_benchmark():
  spec = importlib.util.spec_from_file_location(
      "wavegan_benchmark", REPO_ROOT / "launch" / "benchmark.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_tiny_benchmark_writes_ratios_and_matching_param_counts(tmp_path):
  benchmark = _load_benchmark()
  output = tmp_path / "benchmark.json"
  with flagsaver.flagsaver():
    flags.FLAGS(["benchmark", "--dim=4", "--slice_len=16384",
                 "--batch_size=2", "--repeats=1", f"--output={output}"])
    returned = benchmark.main(["benchmark"])
  results = json.loads(output.read_text())
  assert set(results["medians"]) == {"jax_fast", "torch"}
  for workload in ("generate", "g_step", "d_step"):
    ratio = results[f"ratio_{workload}"]
    assert ratio > 0
    assert ratio == (results["medians"]["torch"][workload]
                     / results["medians"]["jax_fast"][workload])
    assert len(results["times"]["torch"][workload]) == 1
  # d=4: G = 100*16*64 + 16*64 + sum of 25*Cin*Cout + Cout over the layers.
  assert results["param_counts"]["jax_fast"] == {"generator": 171_585,
                                                 "discriminator": 69_249}
  assert results["param_counts"]["torch"] == results["param_counts"][
      "jax_fast"]
  assert returned["config"]["batch_size"] == 2
