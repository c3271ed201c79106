"""Tests for wavegan_jax.models.conv: the fast forms equal the lax reference."""

import re

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.models import conv

# (length, in_channels, out_channels, kernel_size, stride): WaveGAN's K=25,
# stride 4 at short and odd lengths, kernels shorter than / equal to / not a
# multiple of the stride, stride 1 and 2 (the 32768 generator's last layer).
CASES = [
    (16, 6, 5, 25, 4),
    (33, 3, 4, 25, 4),
    (7, 2, 3, 25, 4),
    (9, 3, 2, 3, 4),
    (10, 2, 3, 4, 4),
    (11, 3, 2, 5, 2),
    (13, 2, 2, 25, 2),
    (17, 3, 3, 7, 3),
    (15, 3, 2, 6, 1),
    (31, 2, 2, 8, 8),
]


def _relative_error(actual, expected):
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = max(float(np.max(np.abs(expected))), 1e-30)
  return float(np.max(np.abs(actual - expected))) / scale


def _value_and_grads(fn, x, kernel, stride, padding, cotangent_seed):
  """Output and (d/dx, d/dkernel) of <fn(x, kernel), random cotangent>."""
  out_shape = jax.eval_shape(
      lambda a, b: fn(a, b, stride, padding), x, kernel).shape
  cotangent = np.random.default_rng(cotangent_seed).standard_normal(
      out_shape).astype(np.float32)

  @jax.jit
  def value_and_grads(x, kernel, cotangent):
    y, vjp = jax.vjp(lambda a, b: fn(a, b, stride, padding), x, kernel)
    return (y,) + vjp(cotangent)
  return value_and_grads(x, kernel, cotangent)


def _random_inputs(length, in_channels, out_channels, size, seed):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, length, in_channels)).astype(np.float32)
  kernel = rng.standard_normal(
      (size, in_channels, out_channels)).astype(np.float32)
  return x, kernel


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("case", CASES)
def test_conv_transpose1d_matches_reference(case, padding):
  length, cin, cout, size, stride = case
  x, kernel = _random_inputs(length, cin, cout, size, seed=0)
  fast = _value_and_grads(conv.conv_transpose1d, x, kernel, stride, padding,
                          cotangent_seed=1)
  ref = _value_and_grads(conv.conv_transpose1d_reference, x, kernel, stride,
                         padding, cotangent_seed=1)
  for name, a, b in zip(("value", "grad_x", "grad_kernel"), fast, ref):
    assert a.shape == b.shape, name
    assert _relative_error(a, b) < 1e-5, name
  if padding == "SAME":
    assert fast[0].shape == (2, length * stride, cout)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("case", CASES)
def test_conv1d_matches_reference(case, padding):
  length, cin, cout, size, stride = case
  length = length * stride + 1  # Longer inputs for the downsampling side.
  x, kernel = _random_inputs(length, cin, cout, size, seed=3)
  fast = _value_and_grads(conv.conv1d, x, kernel, stride, padding,
                          cotangent_seed=2)
  ref = _value_and_grads(conv.conv1d_reference, x, kernel, stride, padding,
                         cotangent_seed=2)
  for name, a, b in zip(("value", "grad_x", "grad_kernel"), fast, ref):
    assert a.shape == b.shape, name
    assert _relative_error(a, b) < 1e-5, name
  if padding == "SAME":
    assert fast[0].shape == (2, -(-length // stride), cout)


def test_conv1d_input_shorter_than_stride_same_padding():
  x, kernel = _random_inputs(3, 2, 2, 25, seed=4)
  np.testing.assert_allclose(conv.conv1d(x, kernel, 4, "SAME"),
                             conv.conv1d_reference(x, kernel, 4, "SAME"),
                             rtol=1e-5, atol=1e-5)


def _conv_strides(jaxpr):
  """(window_strides, lhs_dilation) of every convolution in a jaxpr."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      found.append((tuple(eqn.params["window_strides"]),
                    tuple(eqn.params["lhs_dilation"])))
    for param in eqn.params.values():
      if isinstance(param, jax.extend.core.ClosedJaxpr):
        found.extend(_conv_strides(param.jaxpr))
      elif isinstance(param, jax.extend.core.Jaxpr):
        found.extend(_conv_strides(param))
  return found


@pytest.mark.parametrize("fn", [conv.conv1d, conv.conv_transpose1d])
def test_fast_forward_and_gradients_are_stride1_convolutions(fn):
  x, kernel = _random_inputs(16, 4, 4, 25, seed=5)
  loss = lambda a, b: jnp.sum(fn(a, b, 4, "SAME") ** 2)
  jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(x, kernel).jaxpr
  strides = _conv_strides(jaxpr)
  assert len(strides) == 3  # forward, input gradient, kernel gradient
  assert set(strides) == {((1,), (1,))}


def _penalty_grads(conv_fn, x, kernel):
  """d/d(kernel, x) of ||d/dx sum(tanh(conv(x)))||^2, as in WGAN-GP."""
  def penalty(kernel, x):
    grad_x = jax.grad(
        lambda x: jnp.sum(jnp.tanh(conv_fn(x, kernel, 4, "SAME"))))(x)
    return jnp.sum(grad_x ** 2)
  return jax.jit(jax.grad(penalty, argnums=(0, 1)))(kernel, x)


@pytest.mark.parametrize("fn, reference", [
    (conv.conv1d, conv.conv1d_reference),
    (conv.conv_transpose1d, conv.conv_transpose1d_reference)])
def test_second_order_gradients_match_reference(fn, reference):
  """A gradient-penalty-like loss: d/d(kernel, x) of ||d/dx f(x)||^2."""
  x, kernel = _random_inputs(19, 3, 4, 25, seed=9)
  for a, b in zip(_penalty_grads(fn, x, kernel),
                  _penalty_grads(reference, x, kernel)):
    assert _relative_error(a, b) < 1e-5


def test_modules_share_parameters_across_implementations():
  x = jax.random.normal(jax.random.key(6), (2, 40, 3))
  for module_cls in (conv.Conv1D, conv.ConvTranspose1D):
    fast = module_cls(5, 25, 4, impl="fast")
    reference = module_cls(5, 25, 4, impl="reference")
    params = fast.init(jax.random.key(7), x)
    assert params["params"]["kernel"].shape == (25, 3, 5)
    assert params["params"]["bias"].shape == (5,)
    assert (jax.tree_util.tree_structure(params)
            == jax.tree_util.tree_structure(reference.init(
                jax.random.key(7), x)))
    y_fast = fast.apply(params, x)
    y_reference = reference.apply(params, x)
    assert _relative_error(y_fast, y_reference) < 1e-5


def test_bad_arguments_raise_clear_errors():
  x, kernel = _random_inputs(8, 2, 3, 5, seed=8)
  with pytest.raises(ValueError, match="padding must be 'SAME' or 'VALID', "
                     "got 'FULL'"):
    conv.conv1d(x, kernel, 2, "FULL")
  with pytest.raises(ValueError, match="x has 3 channels but kernel expects 2"):
    conv.conv_transpose1d(jnp.zeros((1, 8, 3)), kernel, 2)
  with pytest.raises(ValueError,
                     match=r"x must be \[batch, length, channels\]"):
    conv.conv1d(jnp.zeros((8, 2)), kernel, 2)
  with pytest.raises(ValueError, match="stride must be a positive int, got 0"):
    conv.conv1d(x, kernel, 0)
  with pytest.raises(ValueError, match="shorter than the kernel"):
    conv.conv1d(jnp.zeros((1, 3, 2)), kernel, 1, "VALID")
  with pytest.raises(ValueError, match="impl must be one of"):
    conv.Conv1D(3, 5, impl="slow").init(jax.random.key(0), x)


# Winograd and Fourier: WINOGRAD_MIN_CHANNELS and FOURIER_MIN_WINDOWS are
# lowered so that these small shapes take those paths (WaveGAN's narrow and
# short layers would otherwise keep the direct convolution).
@pytest.fixture
def winograd_everywhere(monkeypatch):
  monkeypatch.setattr(conv, "WINOGRAD_MIN_CHANNELS", 1)
  monkeypatch.setattr(conv, "FOURIER_MIN_WINDOWS", 1)


# The keyword arguments of each fast algorithm.
ALGORITHMS = {"winograd": dict(winograd=True),
              "fourier": dict(winograd=True, fourier=True)}


def _assert_stride1_matches_direct(stride1_fn, length, taps, tolerance,
                                   seed):
  """Value and both gradients of a [x, kernel] -> correlation function."""
  x, kernel = _random_inputs(length, 5, 6, taps, seed=seed)
  as_conv = lambda fn: lambda a, b, stride, padding: fn(a, b)
  got = _value_and_grads(as_conv(stride1_fn), x, kernel, 1, "VALID",
                         cotangent_seed=seed + 1)
  direct = _value_and_grads(as_conv(conv._conv_stride1), x, kernel, 1,
                            "VALID", cotangent_seed=seed + 1)
  for name, a, b in zip(("value", "grad_x", "grad_kernel"), got, direct):
    assert a.shape == b.shape, name
    assert _relative_error(a, b) < tolerance, name


# Larger tiles are less accurate in float32; only tile 2 is used. A tile of
# m outputs of a T-tap filter needs m + T - 2 finite points.
@pytest.mark.parametrize("tile, tolerance, taps", [
    (tile, tolerance, taps)
    for tile, tolerance in ((2, 1e-5), (3, 1e-4), (4, 1e-4))
    for taps in (2, 3, 7, 8)
    if tile + taps - 2 <= len(conv._WINOGRAD_POINTS)])
def test_winograd_stride1_matches_direct(taps, tile, tolerance):
  _assert_stride1_matches_direct(
      lambda a, b: conv._winograd_stride1(a, b, tile), 23, taps, tolerance,
      seed=10)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("case", CASES[:3] + CASES[5:])
@pytest.mark.parametrize("fn, reference", [
    (conv.conv1d, conv.conv1d_reference),
    (conv.conv_transpose1d, conv.conv_transpose1d_reference)])
def test_winograd_matches_reference(fn, reference, case, padding, algorithm,
                                    winograd_everywhere):
  length, cin, cout, size, stride = case
  if fn is conv.conv1d:
    length = length * stride + 1
  x, kernel = _random_inputs(length, cin, cout, size, seed=12)
  winograd = _value_and_grads(
      lambda *args: fn(*args, **ALGORITHMS[algorithm]), x, kernel, stride,
      padding, cotangent_seed=13)
  ref = _value_and_grads(reference, x, kernel, stride, padding,
                         cotangent_seed=13)
  for name, a, b in zip(("value", "grad_x", "grad_kernel"), winograd, ref):
    assert a.shape == b.shape, name
    assert _relative_error(a, b) < 1e-5, name


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("fn, reference", [
    (conv.conv1d, conv.conv1d_reference),
    (conv.conv_transpose1d, conv.conv_transpose1d_reference)])
def test_winograd_second_order_gradients_match_reference(
    fn, reference, algorithm, winograd_everywhere):
  x, kernel = _random_inputs(19, 3, 4, 25, seed=14)
  winograd = _penalty_grads(
      lambda *args: fn(*args, **ALGORITHMS[algorithm]), x, kernel)
  for a, b in zip(winograd, _penalty_grads(reference, x, kernel)):
    assert _relative_error(a, b) < 1e-5


def _count_convolutions(fn, x, kernel):
  return len(_conv_strides(jax.make_jaxpr(
      lambda a, b: fn(a, b, 4, "SAME", winograd=True))(x, kernel).jaxpr))


def test_winograd_only_on_wide_layers():
  narrow = _random_inputs(16, 4, 4, 25, seed=15)
  # Polyphase kernels [7, 512, 128] (conv1d), [7, 128, 512] (transposed).
  wide = _random_inputs(16, 128, 128, 25, seed=15)
  for fn in (conv.conv1d, conv.conv_transpose1d):
    assert _count_convolutions(fn, *narrow) == 1
    assert _count_convolutions(fn, *wide) == 0


@pytest.mark.parametrize("impl", ["winograd", "fourier"])
def test_winograd_module_matches_reference(impl, winograd_everywhere):
  x = jax.random.normal(jax.random.key(16), (2, 40, 3))
  for module_cls in (conv.Conv1D, conv.ConvTranspose1D):
    params = module_cls(5, 25, 4).init(jax.random.key(17), x)
    y = module_cls(5, 25, 4, impl=impl).apply(params, x)
    y_reference = module_cls(5, 25, 4, impl="reference").apply(params, x)
    assert _relative_error(y, y_reference) < 1e-5


# Windows of `size` samples, from shorter than one window to several;
# taps up to the most a window allows (size >= 2 * taps - 2).
@pytest.mark.parametrize("size, taps, length", [
    (12, 7, 9), (12, 7, 40), (16, 1, 23), (16, 3, 23), (16, 8, 50),
    (32, 7, 23), (32, 7, 100)])
def test_fourier_stride1_matches_direct(size, taps, length):
  # Direct-convolution accuracy (~3e-7 here), unlike Winograd's tiles.
  _assert_stride1_matches_direct(
      lambda a, b: conv._fourier_stride1(a, b, size), length, taps, 2e-6,
      seed=20)


def test_fourier_products_per_window():
  # 32-sample windows, 7 taps: 26 outputs from 2 real and 15 complex bins,
  # 3 real products each (Gauss), against 7 * 26 direct.
  a_t, g, b_t = conv._fourier_matrices(32, 7)
  assert a_t.shape == (26, 47) and g.shape == (47, 7) and b_t.shape == (47, 32)
  assert conv._fourier_matrices(15, 4)[1].shape == (1 + 3 * 7, 4)  # odd n


def test_fourier_only_on_wide_layers_with_enough_windows(monkeypatch):
  calls = []
  original = conv._fourier_stride1
  monkeypatch.setattr(conv, "_fourier_stride1",
                      lambda x, k: calls.append(x.shape) or original(x, k))
  # 2 x 3 windows transposed (70 positions: not kernel-bound, so the
  # forward keeps the polyphase form), 2 x 1 window strided.
  wide = _random_inputs(70, 128, 128, 25, seed=22)
  narrow = _random_inputs(400, 4, 4, 25, seed=22)
  for fn in (conv.conv1d, conv.conv_transpose1d):
    for x, kernel in (wide, narrow):
      jax.eval_shape(lambda a, b: fn(a, b, 4, "SAME", winograd=True,
                                     fourier=True), x, kernel)
  assert not calls
  monkeypatch.setattr(conv, "FOURIER_MIN_WINDOWS", 2)
  jax.eval_shape(lambda a, b: conv.conv_transpose1d(
      a, b, 4, "SAME", fourier=True), *wide)
  assert len(calls) == 1


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("case", CASES)
def test_taps_matmul_transpose_matches_reference(case, padding):
  length, cin, cout, size, stride = case
  x, kernel = _random_inputs(length, cin, cout, size, seed=31)
  pad_left, pad_total = conv._transpose_padding(size, stride, padding)
  out_length = (length - 1) * stride + 1 + pad_total - size + 1
  actual = conv._taps_matmul_transpose(x, kernel, stride, pad_left,
                                       out_length)
  expected = conv.conv_transpose1d_reference(x, kernel, stride, padding)
  assert actual.shape == expected.shape
  assert _relative_error(actual, expected) < 2e-6


# (length, in_channels, out_channels): batch 2 x 8 positions <= 16 input
# channels (kernel-bound); stride 4 x 1 output channel (narrow); neither.
KERNEL_BOUND, NARROW, NEITHER = (8, 16, 3), (40, 3, 1), (40, 3, 2)


@pytest.fixture
def taps_calls(monkeypatch):
  calls = []
  original = conv._taps_matmul_transpose
  monkeypatch.setattr(
      conv, "_taps_matmul_transpose",
      lambda x, *args: calls.append(x.shape) or original(x, *args))
  return calls


@pytest.mark.parametrize("impl", ["fast", "winograd", "fourier"])
def test_taps_forward_where_the_kernel_or_narrow_output_dominates(
    impl, taps_calls):
  fn = conv.select(impl, conv.conv_transpose1d,
                    conv.conv_transpose1d_reference)
  for shape, expected_calls in ((KERNEL_BOUND, 1), (NARROW, 2),
                                (NEITHER, 2)):
    x, kernel = _random_inputs(*shape, 25, seed=32)
    y = fn(x, kernel, 4, "SAME")
    assert len(taps_calls) == expected_calls
    expected = conv.conv_transpose1d_reference(x, kernel, 4, "SAME")
    assert _relative_error(y, expected) < 2e-6


def _compiled_ops(fn, *args):
  """(convolutions, dots) in the optimised HLO of jit(fn)(*args)."""
  text = jax.jit(fn).lower(*args).compile().as_text()
  return (len(re.findall(r" convolution\(", text)),
          len(re.findall(r" dot\(", text)))


@pytest.mark.parametrize("shape", [KERNEL_BOUND, NARROW])
def test_taps_forward_gradients_are_the_polyphase_forms(shape):
  """Differentiated, the layer runs the polyphase form (three stride-1
  convolutions, no per-tap matmul), and values and gradients (first and
  second order) equal the reference's."""
  x, kernel = _random_inputs(*shape, 25, seed=33)
  loss = lambda a, b: jnp.sum(conv.conv_transpose1d(a, b, 4, "SAME") ** 2)
  assert _compiled_ops(loss, x, kernel) == (0, 1)
  assert _compiled_ops(jax.grad(loss, argnums=(0, 1)), x, kernel) == (3, 0)
  actual = _value_and_grads(conv.conv_transpose1d, x, kernel, 4, "SAME", 34)
  expected = _value_and_grads(conv.conv_transpose1d_reference, x, kernel, 4,
                              "SAME", 34)
  for a, b in zip(actual, expected):
    assert _relative_error(a, b) < 2e-6
  for a, b in zip(_penalty_grads(conv.conv_transpose1d, x, kernel),
                  _penalty_grads(conv.conv_transpose1d_reference, x, kernel)):
    assert _relative_error(a, b) < 1e-5


def test_nn_upsample_kernel_is_the_running_sum_over_the_factor():
  kernel = np.array([1.0, 2.0, 3.0], np.float32)[:, None, None]
  np.testing.assert_array_equal(
      np.asarray(conv.nn_upsample_kernel(kernel, 2))[:, 0, 0], [1, 3, 5, 3])
  np.testing.assert_array_equal(
      np.asarray(conv.nn_upsample_kernel(kernel, 3))[:, 0, 0],
      [1, 3, 6, 5, 3])


# (length, in_channels, out_channels, kernel_size, factor): the WaveGAN
# generator's 25 taps and factor 4, even kernels (SAME's window cut from a
# VALID output), kernels shorter than the factor, factor 1.
NN_CASES = [(8, 6, 5, 25, 4), (13, 3, 4, 25, 4), (9, 3, 2, 24, 4),
            (7, 2, 3, 3, 4), (11, 3, 2, 6, 2), (10, 2, 2, 5, 3),
            (12, 2, 3, 7, 1)]


@pytest.mark.parametrize("impl", ["fast", "winograd", "fourier"])
@pytest.mark.parametrize("case", NN_CASES)
def test_nn_upsample_conv_equals_repeat_then_same_conv(case, impl):
  length, in_channels, out_channels, size, factor = case
  x, kernel = _random_inputs(length, in_channels, out_channels, size, seed=11)
  module = conv.NNUpsampleConv1D(out_channels, size, factor, impl=impl)
  params = {"params": {"kernel": kernel,
                       "bias": np.zeros(out_channels, np.float32)}}
  reference = conv.Conv1D(out_channels, size, 1, "SAME", impl="reference")
  assert (jax.tree_util.tree_map(np.shape, module.init(jax.random.key(0), x))
          == jax.tree_util.tree_map(np.shape, params))
  cotangent = np.random.default_rng(12).standard_normal(
      (2, length * factor, out_channels)).astype(np.float32)

  def value_and_grads(apply):
    y, vjp = jax.vjp(apply, x, kernel)
    return (y,) + vjp(cotangent)

  def fast(a, b):
    return module.apply({"params": {"kernel": b,
                                    "bias": params["params"]["bias"]}}, a)

  def by_repeat(a, b):
    return reference.apply({"params": {"kernel": b,
                                       "bias": params["params"]["bias"]}},
                           jnp.repeat(a, factor, axis=1))
  for got, want in zip(value_and_grads(fast), value_and_grads(by_repeat)):
    assert got.shape == want.shape
    assert _relative_error(got, want) < 2e-5


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_nn_upsample_conv_names_a_padding_other_than_same(impl):
  x = np.zeros((1, 8, 2), np.float32)
  module = conv.NNUpsampleConv1D(3, 5, 2, "VALID", impl=impl)
  with pytest.raises(ValueError,
                     match="NNUpsampleConv1D: padding must be 'SAME', got "
                           "'VALID'"):
    module.init(jax.random.key(0), x)
