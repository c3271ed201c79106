"""wavegan_jax/benchmarking/profile.py: op names, model parts, a traced step."""

import re

import jax
import jax.numpy as jnp
import pytest

from wavegan_jax.benchmarking import profile
from wavegan_jax.benchmarking import sections


def test_model_parts_from_op_names():
  cases = {
      "jit(_step)/transpose(jvp(AVGenerator))/AVGenerator.fuse/fusion/lstm/"
      "while/body/closed_call/dbh,dhg->dbg/dot_general":
          ("backward", "AVGenerator.fuse/fusion/lstm"),
      "jit(_step)/transpose(jvp(VisualModel.encode))/VisualModel.features/"
      "VisualModel._frame_features/conv_layers_1/conv_general_dilated":
          ("backward", "VisualModel._frame_features/conv_layers_1/"
                       "conv_general_dilated"),
      "jit(_step)/jvp(AVGenerator)/decoder/upsample_0/gather":
          ("forward", "AVGenerator/decoder/upsample_0"),
      "jit(_step)/fft": ("forward", "fft"),
      "jit(_step)": ("forward", "(top level)"),
      profile.NO_METADATA: ("both", profile.NO_METADATA),
  }
  for op_name, expected in cases.items():
    assert profile.model_part(op_name, 3) == expected, op_name
  assert profile.model_part(
      "jit(f)/jvp(Model)/block/dense/dot_general", 1) == ("forward", "Model")


def _two_parts(x, y):
  with jax.named_scope("big"):
    big = x @ x @ x
  with jax.named_scope("loop"):
    small = jax.lax.fori_loop(0, 3, lambda i, v: jnp.sin(v) + i, y)
  return big, jnp.sum(small)


def test_op_names_skip_loops_and_keep_their_bodies():
  x, y = jnp.ones((64, 64)), jnp.ones((8,))
  hlo = jax.jit(_two_parts).lower(x, y).compile().as_text()
  names = profile.hlo_op_names(hlo)
  loops = re.findall(r"%([\w.]+) = [^\n]* while\(", hlo)
  assert loops and not set(loops) & set(names)
  assert any("big" in op_name and "dot_general" in op_name
             for op_name in names.values())
  assert any("loop" in op_name and "sin" in op_name
             for op_name in names.values())


def test_profile_attributes_the_step_to_its_parts():
  x = jax.random.normal(jax.random.key(0), (384, 384))
  y = jnp.ones((8,))
  result = profile.profile_step(jax.jit(_two_parts), (x, y), repeats=3,
                                depth=1)
  assert result["wall_ms"] > 0 and result["op_ms"] > 0
  assert result["busy_cores"] == pytest.approx(
      result["op_ms"] / result["wall_ms"])
  parts = result["parts"]
  assert sum(part["ms"] for part in parts) == pytest.approx(result["op_ms"])
  assert sum(part["fraction"] for part in parts) == pytest.approx(1.0)
  assert [part["ms"] for part in parts] == sorted(
      (part["ms"] for part in parts), reverse=True)
  # Two 384^3 products against a few sines of 8 numbers.
  assert parts[0]["part"] == "big" and parts[0]["pass"] == "forward"
  assert parts[0]["fraction"] > 0.5
  # top=1 folds the rest into one row.
  folded = profile.profile_step(jax.jit(_two_parts), (x, y), repeats=1,
                                depth=1, top=1)["parts"]
  assert len(folded) <= 2
  if len(folded) == 2:
    assert folded[1]["part"].startswith("(other parts: ")


def test_unknown_profile_stage_fails_before_any_section_runs():
  with pytest.raises(ValueError, match=r"acoustic,visual,generator; got "
                     r"\['decoder'\]"):
    sections.run_all(
        ["wavegan", "profile"], dim=4, slice_len=16384, batch_size=2,
        repeats=1, sample_rate=16000, matmul_size=8, stage_config=None,
        stage_repeats=1, wavegan_config=None, manual_dir=None,
        data_dir=None, pipeline_batches=1, profile_stages=["decoder"])


def test_fusion_without_metadata_takes_its_computations():
  hlo = """
%fused_computation.3 (param_0: f32[4]) -> f32[4] {
  %param_0 = f32[4]{0} parameter(0)
  ROOT %mul.1 = f32[4]{0} multiply(%param_0, %param_0), metadata={op_name="jit(f)/Model/square/mul"}
}

ENTRY %main (x: f32[4]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  %copy.7 = f32[4]{0} copy(%x)
  ROOT %ynn_fusion.2 = f32[4]{0} fusion(%copy.7), kind=kCustom, calls=%fused_computation.3
}
"""
  names = profile.hlo_op_names(hlo)
  assert names["ynn_fusion.2"] == "jit(f)/Model/square/mul"
  assert names["copy.7"] == profile.NO_METADATA
  assert profile.model_part(names["ynn_fusion.2"], 2) == (
      "forward", "Model/square")
