"""Tests of the per-experiment model summary (launch/summarize.py)."""

import pathlib
import subprocess
import sys

from experiments import av_digits
from wavegan_jax.models import summary

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_paper_wavegan_has_the_official_parameter_counts():
  output = subprocess.run(
      [sys.executable, str(REPO / "launch" / "summarize.py"),
       "--config=" + str(REPO / "experiments" / "wavegan.py") + ":paper"],
      check=True, capture_output=True, text=True).stdout
  lines = dict(line.split(" ", 1) for line in output.strip().splitlines())
  assert lines["generator"].startswith("params=19065345 ")
  assert lines["discriminator"].startswith("params=17427969 ")
  # XLA counts the generator's forward pass as compiled. Directly, its five
  # transposed convolutions of 25 taps are 1.69 GFLOP at d=64; the default
  # Winograd F(2, 7) form does 8 products per 2 outputs instead of 14 on
  # the wide layers (plus transforms), so between 0.57x and 1x of that.
  flops = float(lines["generator"].split("flops_per_example=")[1])
  assert 0.57 * 1.69e9 < flops < 1.69e9


def test_av_digits_summary_lists_every_model():
  summaries = summary.summarize(av_digits.get_config("tiny"))
  assert [s.name for s in summaries] == ["acoustic", "visual", "generator",
                                         "discriminator"]
  assert all(s.params > 0 for s in summaries)
  # The LSTM models run loops, whose FLOPs XLA undercounts: flagged.
  assert summaries[0].flops_lower_bound
  assert not summaries[3].flops_lower_bound
