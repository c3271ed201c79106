"""Tests for wavegan_jax.models.conv_auto: conv_impl='auto'."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import conv
from wavegan_jax.models import conv_auto
from wavegan_jax.models import wavegan

# Every form conv_test.py checks against the reference (values, gradients,
# second-order gradients).
FORMS_EQUAL_TO_REFERENCE = ("fast", "winograd", "fourier", "reference")
OPS = {"conv1d": (conv.conv1d_reference, 4 * 16 + 1),
       "conv_transpose1d": (conv.conv_transpose1d_reference, 16)}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
  """A cache file of this test's own; the in-process choices cleared."""
  path = tmp_path / "conv_auto.json"
  monkeypatch.setenv("WAVEGAN_CONV_CACHE", str(path))
  monkeypatch.delenv("WAVEGAN_CONV_AUTO", raising=False)
  conv_auto.clear_cache(str(path))
  yield path
  conv_auto.clear_cache(str(path))


@pytest.fixture
def timed_everywhere(monkeypatch):
  """Small layers timed too; Winograd / Fourier on narrow, short layers."""
  monkeypatch.setattr(conv_auto, "AUTO_MIN_FLOPS", 0)
  monkeypatch.setattr(conv_auto, "MIN_SECONDS", 0.0)
  monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 1)
  monkeypatch.setattr(conv, "FOURIER_MIN_WINDOWS", 1)


def _inputs(op, seed=0):
  length = OPS[op][1]
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, length, 5)).astype(np.float32)
  kernel = rng.standard_normal((25, 5, 6)).astype(np.float32)
  return x, kernel


def _relative_error(actual, expected):
  scale = max(float(np.max(np.abs(expected))), 1e-30)
  return float(np.max(np.abs(np.asarray(actual) - expected))) / scale


def _value_grads_penalty(fn, x, kernel):
  """Output, d/d(x, kernel) of a loss, and d/d(kernel, x) of a WGAN-GP-like
  penalty ||d/dx sum(tanh(fn))||^2, all under jit."""
  def loss(a, b):
    return jnp.sum(jnp.sin(fn(a, b, 4, "SAME")))

  def penalty(b, a):
    grad_x = jax.grad(lambda a: jnp.sum(jnp.tanh(fn(a, b, 4, "SAME"))))(a)
    return jnp.sum(grad_x ** 2)
  return jax.jit(lambda a, b: (fn(a, b, 4, "SAME"),)
                 + jax.grad(loss, (0, 1))(a, b)
                 + jax.grad(penalty, (0, 1))(b, a))(x, kernel)


def test_every_form_auto_can_pick_is_checked_against_the_reference():
  assert set(conv_auto.CANDIDATES) <= set(FORMS_EQUAL_TO_REFERENCE)
  assert {conv_auto.RULE_IMPL, conv_auto.ACCELERATOR_IMPL} <= set(
      FORMS_EQUAL_TO_REFERENCE)
  # XLA:CPU's native form only where it is not the slow path.
  assert "reference" in conv_auto.candidates_for("conv1d", "forward")
  for op, mode in (("conv1d", "train"), ("conv_transpose1d", "forward"),
                   ("conv_transpose1d", "train")):
    assert conv_auto.candidates_for(op, mode) == ("fast", "fourier",
                                                  "winograd")


def test_fingerprint_reads_the_cpu_and_its_isa(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                     "flags\t\t: fpu sse2 avx2 fma avx512f\n\n"
                     "processor\t: 1\nmodel name\t: Test CPU 9000\n"
                     "flags\t\t: fpu sse2 avx2 fma avx512f\n")
  fingerprint = conv_auto.host_fingerprint(str(cpuinfo))
  assert fingerprint == {"cpu": "Test CPU 9000",
                         "isa": ["avx2", "fma", "avx512f"],
                         "cores": os.cpu_count(), "jax": jax.__version__,
                         "backend": "cpu", "device_kind": "cpu"}
  key = conv_auto.fingerprint_key(fingerprint)
  assert len(key) == 16
  assert key == conv_auto.fingerprint_key(dict(reversed(fingerprint.items())))
  for field, other in (("isa", ["avx2", "fma"]), ("cores", 1000),
                       ("jax", "0.0.1"), ("cpu", "Other CPU")):
    assert conv_auto.fingerprint_key({**fingerprint, field: other}) != key


def test_choice_is_timed_once_then_read_from_the_cache(
    private_cache, timed_everywhere, monkeypatch):
  x, kernel = _inputs("conv1d")
  args = ("conv1d", x.shape, kernel.shape, 4, "SAME", np.float32)
  choice = conv_auto.choose(*args, "forward")
  assert choice in conv_auto.candidates_for("conv1d", "forward")
  hosts = json.loads(private_cache.read_text())["hosts"]
  fingerprint = conv_auto.host_fingerprint()
  entry = hosts[conv_auto.fingerprint_key(fingerprint)]
  assert entry["fingerprint"] == fingerprint
  stored = entry["choices"][conv_auto.layer_key(*args, "forward")]
  assert stored["impl"] == choice
  assert set(stored["seconds"]) == {"fast", "fourier", "reference",
                                    "winograd"}
  assert all(seconds > 0 for seconds in stored["seconds"].values())
  assert choice == conv_auto.fastest(stored["seconds"])
  # A new process (no in-process choices) reads the file, times nothing.
  conv_auto._choices.clear()
  monkeypatch.setattr(conv_auto, "time_candidates", _no_timing)
  assert conv_auto.choose(*args, "forward") == choice
  # Another host fingerprint has no entry yet: it would time.
  monkeypatch.setattr(conv_auto, "host_fingerprint",
                      lambda: {**fingerprint, "cores": 1000})
  with pytest.raises(AssertionError, match="timed"):
    conv_auto.choose(*args, "forward")


def _no_timing(*args, **kwargs):
  raise AssertionError(f"timed {args}")


def test_fastest_keeps_the_rule_unless_clearly_beaten():
  assert conv_auto.RULE_IMPL == "fourier"
  assert conv_auto.fastest({"fourier": 1.0, "fast": 0.95}) == "fourier"
  assert conv_auto.fastest({"fourier": 1.0, "fast": 0.85,
                            "winograd": 0.8}) == "winograd"
  # Near ties among the others: the more accurate.
  assert conv_auto.fastest({"fourier": 1.0, "fast": 0.81,
                            "winograd": 0.8}) == "fast"
  assert conv_auto.fastest({"fast": 1.0, "winograd": 0.5}) == "winograd"


@pytest.mark.parametrize("op", OPS)
def test_auto_equals_the_reference_where_it_times(op, timed_everywhere):
  reference, _ = OPS[op]
  x, kernel = _inputs(op, seed=1)
  auto = conv.select("auto", getattr(conv, op), reference)
  # Winograd's float32 error (~3e-6 a layer, conv.py) grows in the
  # penalty's second-order terms (2e-5 seen here); the others 1e-5.
  for name, got, want in zip(
      ("value", "grad_x", "grad_kernel", "penalty_kernel", "penalty_x"),
      _value_grads_penalty(auto, x, kernel),
      _value_grads_penalty(reference, x, kernel)):
    assert got.shape == want.shape, name
    assert _relative_error(got, want) < (
        1e-4 if name.startswith("penalty") else 1e-5), name
  chosen = conv_auto._choices.values()
  assert len(chosen) == 2  # 'forward' and 'train', each timed once.
  assert set(chosen) <= set(conv_auto.CANDIDATES)


@pytest.mark.parametrize("op", OPS)
def test_forward_and_train_choices_run_where_each_applies(
    op, timed_everywhere, monkeypatch):
  """Forward 'winograd', train 'fourier': each runs where it is chosen
  (a Fourier correlation appears only under differentiation) and both
  equal the reference, gradients of both orders included."""
  reference, _ = OPS[op]
  x, kernel = _inputs(op, seed=2)
  monkeypatch.setattr(conv_auto, "choose", lambda *args: {
      "forward": "winograd", "train": "fourier"}[args[6]])
  fourier_calls = []
  original = conv._fourier_stride1
  monkeypatch.setattr(conv, "_fourier_stride1", lambda a, b: (
      fourier_calls.append(a.shape) or original(a, b)))
  auto = conv.select("auto", getattr(conv, op), reference)
  jax.eval_shape(lambda a, b: auto(a, b, 4, "SAME"), x, kernel)
  assert not fourier_calls
  for got, want in zip(_value_grads_penalty(auto, x, kernel),
                       _value_grads_penalty(reference, x, kernel)):
    assert _relative_error(got, want) < 1e-5
  assert fourier_calls


def test_accelerators_use_the_native_convolution(monkeypatch):
  monkeypatch.setattr(conv_auto, "_backend", lambda: "gpu")
  monkeypatch.setattr(conv_auto, "time_candidates", _no_timing)
  monkeypatch.setattr(conv_auto, "AUTO_MIN_FLOPS", 0)
  for op in OPS:
    for mode in conv_auto.MODES:
      assert conv_auto.choose(op, (16, 64, 512), (25, 512, 256), 4, "SAME",
                              np.float32, mode) == "reference"
  monkeypatch.setattr(conv_auto, "_backend", lambda: "tpu")
  x, kernel = _inputs("conv_transpose1d")
  # No custom gradient around it: one native transposed convolution.
  jaxpr = jax.make_jaxpr(lambda a, b: conv_auto.auto_conv(
      "conv_transpose1d", a, b, 4))(x, kernel)
  names = [eqn.primitive.name for eqn in jaxpr.jaxpr.eqns]
  assert names == ["conv_general_dilated"]
  assert jaxpr.jaxpr.eqns[0].params["lhs_dilation"] == (4,)


def test_rule_without_timing(monkeypatch):
  monkeypatch.setattr(conv_auto, "time_candidates", _no_timing)
  big = ("conv_transpose1d", (16, 64, 512), (25, 512, 256), 4, "SAME",
         np.float32, "train")
  # Small layers, init traces and WAVEGAN_CONV_AUTO=rule take the rule.
  assert conv_auto.choose("conv1d", (2, 65, 5), (25, 5, 6), 4, "SAME",
                          np.float32, "train") == conv_auto.RULE_IMPL
  assert conv_auto.choose(*big, initializing=True) == conv_auto.RULE_IMPL
  monkeypatch.setenv("WAVEGAN_CONV_AUTO", "rule")
  assert conv_auto.choose(*big) == conv_auto.RULE_IMPL
  monkeypatch.setenv("WAVEGAN_CONV_AUTO", "fastest")
  with pytest.raises(ValueError, match="WAVEGAN_CONV_AUTO must be 'time' or "
                     "'rule', got 'fastest'"):
    conv_auto.choose(*big)


def test_bad_cache_file_and_arguments_raise_clear_errors(private_cache):
  private_cache.write_text("not json")
  with pytest.raises(ValueError, match=f"{private_cache}: not a "
                     "conv_impl='auto' cache"):
    conv_auto.load_cache(str(private_cache))
  private_cache.write_text(json.dumps({"version": 0, "hosts": {}}))
  with pytest.raises(ValueError, match="delete it to re-time"):
    conv_auto.load_cache(str(private_cache))
  with pytest.raises(ValueError, match="mode must be one of"):
    conv_auto.choose("conv1d", (1, 8, 1), (3, 1, 1), 1, "SAME", np.float32,
                     "infer")
  with pytest.raises(ValueError, match="op must be one of"):
    conv_auto.auto_conv("conv2d", jnp.zeros((1, 8, 1)), jnp.zeros((3, 1, 1)))


def test_cache_path_defaults_under_xdg_cache_home(monkeypatch, tmp_path):
  monkeypatch.delenv("WAVEGAN_CONV_CACHE")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert conv_auto.cache_path() == str(tmp_path / "wavegan_jax" /
                                       "conv_auto.json")
  monkeypatch.setenv("WAVEGAN_CONV_CACHE", "~/elsewhere.json")
  assert conv_auto.cache_path() == os.path.expanduser("~/elsewhere.json")


def test_wavegan_auto_times_under_jit_and_equals_reference(
    private_cache, timed_everywhere, monkeypatch):
  """Module init takes the rule (no timing); the jitted apply times each
  layer shape while tracing and matches the reference model."""
  z = jax.random.uniform(jax.random.key(0), (2, 100), minval=-1.0,
                         maxval=1.0)
  auto = wavegan.WaveGANGenerator(dim=2, slice_len=8192, conv_impl="auto")
  monkeypatch.setattr(conv_auto, "time_candidates", _no_timing)
  params = auto.init(jax.random.key(1), z)
  monkeypatch.undo()
  monkeypatch.setattr(conv_auto, "AUTO_MIN_FLOPS", 0)
  monkeypatch.setattr(conv_auto, "MIN_SECONDS", 0.0)
  monkeypatch.setenv("WAVEGAN_CONV_CACHE", str(private_cache))
  audio = jax.jit(auto.apply)(params, z)
  reference = wavegan.WaveGANGenerator(dim=2, slice_len=8192,
                                       conv_impl="reference")
  np.testing.assert_allclose(audio, jax.jit(reference.apply)(params, z),
                             atol=1e-6)
  stored = json.loads(private_cache.read_text())["hosts"]
  choices = next(iter(stored.values()))["choices"]
  assert len(choices) == 5  # The five transposed layers, forward mode.
  assert all(key.endswith(" forward") for key in choices)
