"""1-D convolutions and transposed convolutions with WaveGAN's conventions.

API (kept stable for the other modules):
  conv1d(x, kernel, stride, padding) / conv_transpose1d(x, kernel, stride,
  padding): functional forms; x is [batch, length, channels], kernel is
  [kernel_size, in_channels, out_channels].
  Conv1D / ConvTranspose1D: Flax modules with params `kernel` and `bias`
  shaped like `nn.Conv` / `nn.ConvTranspose`.
  'SAME' padding: Conv1D gives ceil(length / stride) outputs, ConvTranspose1D
  gives length * stride outputs, as TensorFlow's conv1d / conv1d_transpose.

Why a fast formulation: XLA:CPU lowers transposed convolutions, and the input
gradient of strided convolutions, to a very slow path at short lengths and
wide channels (seconds per WaveGAN layer). Here every strided operation is
rewritten as a stride-1 convolution over a polyphase (space-to-depth)
reshaping of the signal, with the kernel rearranged to match:

  * conv1d with stride s: the padded input [B, s*P, C] is viewed as
    [B, P, s*C] (s phases side by side in the channels) and convolved at
    stride 1 with a kernel of ceil(K/s) taps, [ceil(K/s), s*C, Cout].
  * conv_transpose1d with stride s: output phase r (samples s*q + r) only
    sees kernel taps of one residue class modulo s, so all s phases come
    from ONE stride-1 convolution of the un-upsampled input with a kernel
    [T, Cin, s*Cout] (T about ceil(K/s) taps); the phases then interleave.

The forward pass and both autodiff gradients are then stride-1 convolutions
(plus pads, reshapes and static kernel slices), which XLA:CPU runs fast.
The result equals `jax.lax.conv_general_dilated` / `jax.lax.conv_transpose`
with the same padding string, up to float rounding; the reference forms are
kept as `conv1d_reference` / `conv_transpose1d_reference` and selectable with
`impl='reference'`.

Winograd option (`impl='winograd'`): Toom-Cook / Winograd F(2, T) computes
2 outputs of a T-tap correlation with T + 1 channel-mixing products instead
of 2T, forward and in both autodiff gradients, at about 10x the direct
form's rounding (~3e-6 relative per layer). It is used only where both
channel counts of the correlation are >= WINOGRAD_MIN_CHANNELS; narrow
layers keep the direct convolution, where the transforms' memory traffic
outweighs the saved FLOPs.

Fourier option (`impl='fourier'`): the same A^T ((G g) * (B^T d)) form with
the points on the unit circle, i.e. overlap-save with a real DFT of 32-sample
windows (`_fourier_matrices`): 26 outputs of a 7-tap correlation from 47
channel-mixing products, at the direct convolution's accuracy. The
transformed kernel is 47/7 times the kernel, so it is used only on layers
with at least FOURIER_MIN_WINDOWS windows (batch x windows per example) and
both channel counts >= WINOGRAD_MIN_CHANNELS; the others keep Winograd
(wide) or the direct convolution.

Per-tap forward (every impl but 'reference', inference only): where the
kernel outweighs the activations, or a last layer has stride x Cout <= 4
outputs per position, conv_transpose1d's forward is one matmul of x with
the kernel as stored and an overlap-add of ceil(K/s) shifted slices
(`_taps_matmul_transpose`), which spares rearranging (and transforming)
the whole kernel on every call. Under reverse-mode autodiff the polyphase
form runs instead, forward and backward (`_taps_forward`): the backward
needs the rearranged kernel anyway. Forward-mode autodiff (jvp) of such a
layer is not supported, as for every stride-1 correlation here
(`_conv_stride1`).

Timings of every form, and the variants tried and dropped, are in
docs/performance.md ("Why the JAX side is fast").

`impl='auto'` (conv_auto.py) picks one of 'fast', 'fourier', 'winograd'
and 'reference' per layer shape, mode (forward only or differentiated)
and host: XLA's native convolution on GPU / TPU, a cached timing on CPU.
"""

import functools
import importlib
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_DIMENSION_NUMBERS = ("NWC", "WIO", "NWC")
# 'auto' picks one of the others per layer shape and host (conv_auto.py).
IMPLEMENTATIONS = ("fast", "reference", "winograd", "fourier", "auto")
WINOGRAD_TILE = 2  # outputs per Winograd tile
WINOGRAD_MIN_CHANNELS = 128
# Finite Toom-Cook interpolation points (the point at infinity is added);
# small magnitudes and reciprocal pairs keep the float32 error low.
_WINOGRAD_POINTS = (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1.5, -1.5)
FOURIER_SIZE = 32  # samples per overlap-save window
# Windows (batch x windows per example) below which the transformed kernel,
# a / taps times the kernel's size, costs more memory traffic than the
# products save (WaveGAN's first, short layers).
FOURIER_MIN_WINDOWS = 128
# conv_transpose1d's forward as per-tap matmuls where stride x out_channels
# is at most this (see `_use_taps_forward`).
TAPS_MAX_PHASE_CHANNELS = 4


# Model computation dtypes (params stay float32): bfloat16 for GPU / TPU.
COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype(name):
  """The jnp dtype of a `compute_dtype` name; ValueError for others."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got "
                     f"{name!r}")
  return jnp.dtype(name)


def check_args(x, kernel, stride, padding, name):
  """Validates shapes and options; returns the upper-case padding string."""
  if x.ndim != 3:
    raise ValueError(f"{name}: x must be [batch, length, channels], got shape "
                     f"{x.shape}")
  if kernel.ndim != 3:
    raise ValueError(f"{name}: kernel must be [kernel_size, in_channels, "
                     f"out_channels], got shape {kernel.shape}")
  if x.shape[-1] != kernel.shape[1]:
    raise ValueError(f"{name}: x has {x.shape[-1]} channels but kernel "
                     f"expects {kernel.shape[1]} (kernel shape {kernel.shape})")
  if not isinstance(stride, (int, np.integer)) or stride < 1:
    raise ValueError(f"{name}: stride must be a positive int, got {stride!r}")
  if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
    raise ValueError(f"{name}: padding must be 'SAME' or 'VALID', got "
                     f"{padding!r}")
  return padding.upper()


@jax.custom_vjp
def _conv_stride1(x, kernel):
  """Stride-1 VALID correlation: [B, L, Ci] x [T, Ci, Co] -> [B, L-T+1, Co].

  The custom gradient keeps every derivative, to any order, a VALID stride-1
  convolution with explicit zero padding: autodiff's own input gradient pads
  inside the convolution, and the kernel gradient of THAT (needed by
  second-order terms such as WGAN-GP) takes a very slow XLA:CPU path.
  Reverse mode only (no jvp).
  """
  return jax.lax.conv_general_dilated(
      x, kernel, (1,), "VALID", dimension_numbers=_DIMENSION_NUMBERS)


def _conv_stride1_fwd(x, kernel):
  return _conv_stride1(x, kernel), (x, kernel)


def _conv_stride1_bwd(residuals, grad_y):
  x, kernel = residuals
  taps = kernel.shape[0]
  # dx[l] = sum_t dy[l - t] kernel[t]^T: a correlation of the padded dy
  # with the flipped, transposed kernel.
  grad_y_padded = jnp.pad(grad_y, ((0, 0), (taps - 1, taps - 1), (0, 0)))
  grad_x = _conv_stride1(grad_y_padded,
                         jnp.flip(kernel, 0).transpose(0, 2, 1))
  # dkernel[t, i, o] = sum_{b, q} x[b, q + t, i] dy[b, q, o]: batch and
  # channels swap roles, dy is the window.
  grad_kernel = jax.lax.conv_general_dilated(
      x, grad_y, (1,), "VALID",
      dimension_numbers=("CWN", "IWO", "WNC"))
  return grad_x, grad_kernel.astype(kernel.dtype)


_conv_stride1.defvjp(_conv_stride1_fwd, _conv_stride1_bwd)


@functools.lru_cache(maxsize=None)
def _toom_cook(tile, taps):
  """Winograd matrices (A^T [m, a], G [a, r], B^T [a, a]), float64.

  For m = tile outputs and r = taps, with a = m + r - 1 points:
  y[k] = sum_t d[k + t] g[t] (k < m) equals A^T ((G g) * (B^T d)) for any
  window d of a samples. This is the transpose of Toom-Cook polynomial
  multiplication: evaluation (Vandermonde) matrices for the m-tap and r-tap
  factors, inverse Vandermonde (interpolation) for the product.
  """
  size = tile + taps - 1
  points = np.array(_WINOGRAD_POINTS[:size - 1], np.float64)

  def vandermonde(columns):  # rows: p ** j, then the leading coefficient
    v = np.zeros((size, columns))
    v[:-1] = points[:, None] ** np.arange(columns)
    v[-1, -1] = 1.0
    return v
  # Row scales move the Lagrange denominators from B^T (applied to the
  # data) into G (applied once to the kernel).
  scale = np.ones(size)
  for i, p in enumerate(points):
    scale[i] = np.prod(p - np.delete(points, i))
  b_t = scale[:, None] * np.linalg.inv(vandermonde(size)).T
  g = vandermonde(taps) / scale[:, None]
  return vandermonde(tile).T, g, b_t


def _weighted_sum(coefficients, terms):
  """sum_i c_i * terms[i] over the nonzero c_i (an elementwise fusion)."""
  total = None
  for c, term in zip(coefficients, terms):
    if c:
      term = term if c == 1 else np.float32(c) * term
      total = term if total is None else total + term
  return total


def _winograd_stride1(x, kernel, tile=WINOGRAD_TILE):
  """`_conv_stride1` by Winograd F(tile, T): fewer FLOPs, float32 rounding
  about 10x larger (see the module docstring).

  Plain jnp ops, so autodiff to any order is again the same transforms and
  batched matmuls (also with the reduced work). Wide layers only.
  """
  batch, length, in_channels = x.shape
  taps, _, out_channels = kernel.shape
  size = tile + taps - 1
  a_t, g, b_t = _toom_cook(tile, taps)
  out_length = length - taps + 1
  tiles = -(-out_length // tile)
  x = jnp.pad(x, ((0, 0), (0, tiles * tile + taps - 1 - length), (0, 0)))
  # Sample j of every tile's window: [B, tiles, Ci] each.
  windows = [x[:, j:j + tiles * tile:tile] for j in range(size)]
  # Transform index leading: one batched matmul, no transposes.
  v = jnp.stack([_weighted_sum(row, windows) for row in b_t])
  v = v.reshape(size, batch * tiles, in_channels)
  u = jnp.einsum("at,tio->aio", g.astype(np.float32), kernel)
  products = jnp.matmul(v, u)  # [size, B * tiles, Co]
  y = jnp.stack([_weighted_sum(row, products) for row in a_t], axis=1)
  y = y.reshape(batch, tiles * tile, out_channels)
  return y[:, :out_length]


@functools.lru_cache(maxsize=None)
def _fourier_matrices(size, taps):
  """Overlap-save DFT transforms in Winograd form, float64.

  A window d of n = `size` samples gives m = n - taps + 1 outputs of the
  correlation y[q] = sum_t d[q + t] g[t]: with D = DFT(d), W = DFT(g) the
  circular correlation is IDFT(D * conj(W)), exact for q < m. Real input
  makes bins 0 (and n/2) real products; every other bin up to n/2 is a
  complex product, done by Gauss's three real products (k1 = (Dr + Di) Wr,
  k2 = Dr (S - Wr), k3 = Di (Wr + S) with conj(W) = Wr + iS; real part
  k1 - k3, imaginary part k1 + k2). Every step is linear, so the sums of
  Dr, Di, of Wr, S and of the k's fold into the matrices: y = A^T ((G g) *
  (B^T d)) as in `_toom_cook`, with 3n/2 - 1 products (n even) per m
  outputs. The points are roots of unity, so unlike Winograd's real points
  the rounding does not grow with the tile.

  Returns (A^T [m, a], G [a, taps], B^T [a, n]).
  """
  n, tile = size, size - taps + 1
  sample, tap, output = np.arange(n), np.arange(taps), np.arange(tile)
  a_columns, g_rows, b_rows = [], [], []
  for k in [0] + ([n // 2] if n % 2 == 0 else []):  # real bins
    b_rows.append(np.cos(2 * np.pi * sample * k / n))
    g_rows.append(np.cos(2 * np.pi * tap * k / n))
    a_columns.append(np.cos(2 * np.pi * output * k / n) / n)
  for k in range(1, (n - 1) // 2 + 1):  # complex bins, each counted twice
    d_real = np.cos(2 * np.pi * sample * k / n)
    d_imag = -np.sin(2 * np.pi * sample * k / n)
    w_real = np.cos(2 * np.pi * tap * k / n)
    w_sin = np.sin(2 * np.pi * tap * k / n)
    # y[q] += Cr c_q + Ci s_q = k1 (c_q + s_q) + k2 s_q - k3 c_q.
    c_q = 2 * np.cos(2 * np.pi * output * k / n) / n
    s_q = -2 * np.sin(2 * np.pi * output * k / n) / n
    b_rows += [d_real + d_imag, d_real, d_imag]
    g_rows += [w_real, w_sin - w_real, w_real + w_sin]
    a_columns += [c_q + s_q, s_q, -c_q]
  return np.stack(a_columns, 1), np.stack(g_rows), np.stack(b_rows)


def _fourier_windows(out_length, taps, size):
  """Overlap-save windows of `size` samples for `out_length` outputs."""
  return -(-out_length // (size - taps + 1))


def _fourier_stride1(x, kernel, size=FOURIER_SIZE):
  """`_conv_stride1` by overlap-save DFTs of `size` samples (see
  `_fourier_matrices`): 1.8 channel-mixing products per output for 7 taps
  at 32 samples, against 7 direct and 4 for Winograd F(2, 7), with the
  direct convolution's float32 accuracy.

  Transforms are matrix products over the window axis, so autodiff to any
  order is again transforms and batched matmuls.
  """
  batch, length, in_channels = x.shape
  taps, _, out_channels = kernel.shape
  out_length = length - taps + 1
  a_t, g, b_t = (m.astype(np.float32) for m in _fourier_matrices(size, taps))
  tile, points = a_t.shape[0], g.shape[0]
  tiles = _fourier_windows(out_length, taps, size)
  # Window j = block j plus the first taps - 1 samples of block j + 1.
  x = jnp.pad(x, ((0, 0), (0, (tiles + 1) * tile - length), (0, 0)))
  blocks = x.reshape(batch, tiles + 1, tile, in_channels)
  v = (jnp.einsum("an,btnc->abtc", b_t[:, :tile], blocks[:, :-1])
       + jnp.einsum("an,btnc->abtc", b_t[:, tile:],
                    blocks[:, 1:, :taps - 1]))
  v = v.reshape(points, batch * tiles, in_channels)
  u = jnp.einsum("at,tio->aio", g, kernel)
  products = jnp.matmul(v, u)  # [a, B * tiles, Co]
  y = jnp.einsum("qa,abtc->btqc", a_t,
                 products.reshape(points, batch, tiles, out_channels))
  y = y.reshape(batch, tiles * tile, out_channels)
  return y[:, :out_length]


def _wide(kernel):
  taps, in_channels, out_channels = kernel.shape
  return taps > 1 and min(in_channels, out_channels) >= WINOGRAD_MIN_CHANNELS


def _stride1(x, kernel, winograd, fourier=False):
  """The stride-1 correlation: Winograd where it pays (wide, few taps);
  with `fourier`, overlap-save DFTs on wide layers with enough windows."""
  taps = kernel.shape[0]
  if (fourier and _wide(kernel) and FOURIER_SIZE >= 2 * taps - 2 and
      x.shape[0] * _fourier_windows(x.shape[1] - taps + 1, taps, FOURIER_SIZE)
      >= FOURIER_MIN_WINDOWS):
    return _fourier_stride1(x, kernel)
  if (winograd and _wide(kernel)
      and WINOGRAD_TILE + taps - 2 <= len(_WINOGRAD_POINTS)):
    return _winograd_stride1(x, kernel)
  return _conv_stride1(x, kernel)


def _pad_or_crop(x, left, right):
  """Pads (positive) or crops (negative) axis 1 of x with zeros."""
  if left < 0:
    x = x[:, -left:]
    left = 0
  if right < 0:
    x = x[:, :x.shape[1] + right]
    right = 0
  if left or right:
    x = jnp.pad(x, ((0, 0), (left, right), (0, 0)))
  return x


def conv1d_reference(x, kernel, stride=1, padding="SAME"):
  """The plain lax strided convolution (slow gradients on XLA:CPU).

  Args:
    x: [batch, length, in_channels].
    kernel: [kernel_size, in_channels, out_channels].
    stride: int.
    padding: 'SAME' or 'VALID'.

  Returns:
    [batch, out_length, out_channels].
  """
  padding = check_args(x, kernel, stride, padding, "conv1d_reference")
  return jax.lax.conv_general_dilated(
      x, kernel, (stride,), padding, dimension_numbers=_DIMENSION_NUMBERS)


def conv_transpose1d_reference(x, kernel, stride=1, padding="SAME"):
  """The plain `jax.lax.conv_transpose` (slow on XLA:CPU).

  Args:
    x: [batch, length, in_channels].
    kernel: [kernel_size, in_channels, out_channels].
    stride: int.
    padding: 'SAME' (length * stride outputs) or 'VALID'.

  Returns:
    [batch, out_length, out_channels].
  """
  padding = check_args(x, kernel, stride, padding,
                        "conv_transpose1d_reference")
  return jax.lax.conv_transpose(
      x, kernel, (stride,), padding, dimension_numbers=_DIMENSION_NUMBERS)


def conv1d(x, kernel, stride=1, padding="SAME", winograd=False,
           fourier=False):
  """Strided 1-D convolution as a stride-1 convolution over space-to-depth.

  Equals `jax.lax.conv_general_dilated(x, kernel, (stride,), padding)` with
  NWC / WIO / NWC layouts.

  Args:
    x: [batch, length, in_channels].
    kernel: [kernel_size, in_channels, out_channels].
    stride: int.
    padding: 'SAME' (ceil(length / stride) outputs) or 'VALID'
      (floor((length - kernel_size) / stride) + 1 outputs).
    winograd: Winograd stride-1 correlation on wide layers (see above).
    fourier: overlap-save DFT correlation on wide layers with enough
      windows, Winograd (if `winograd`) or direct on the others.

  Returns:
    [batch, out_length, out_channels].
  """
  padding = check_args(x, kernel, stride, padding, "conv1d")
  length, in_channels = x.shape[1], x.shape[2]
  size, _, out_channels = kernel.shape
  if padding == "SAME":
    out_length = -(-length // stride)
    pad_total = max((out_length - 1) * stride + size - length, 0)
    pad_left = pad_total // 2
  else:
    out_length = (length - size) // stride + 1
    pad_left = 0
  if out_length <= 0:
    raise ValueError(f"conv1d: input length {length} is shorter than the "
                     f"kernel ({size}) with 'VALID' padding")
  if stride == 1:
    return _stride1(
        _pad_or_crop(x, pad_left, out_length + size - 1 - length - pad_left),
        kernel, winograd, fourier)
  taps = -(-size // stride)
  # Input samples s*p + r for p < out_length + taps - 1: a whole number of
  # phases; anything past the last window is cropped, missing ends are zeros.
  span = stride * (out_length + taps - 1)
  x = _pad_or_crop(x, pad_left, span - length - pad_left)
  x = x.reshape(x.shape[0], out_length + taps - 1, stride * in_channels)
  # Tap j = s*m + r of the kernel moves to tap m, channel block r: zero
  # taps up to a multiple of s, then a reshape. (Static pads and slices, not
  # a gather: XLA:CPU ran the gather, and its scatter-add gradient, at a
  # fraction of the copy rate.)
  kernel = jnp.pad(kernel, ((0, taps * stride - size), (0, 0), (0, 0)))
  kernel = kernel.reshape(taps, stride * in_channels, out_channels)
  return _stride1(x, kernel, winograd, fourier)


def _transpose_padding(size, stride, padding):
  """Left padding and output length of `lax.conv_transpose` (kernel size)."""
  if padding == "SAME":
    pad_total = size + stride - 2
    pad_left = size - 1 if stride > size - 1 else math.ceil(pad_total / 2)
  else:
    pad_total = size + stride - 2 + max(size - stride, 0)
    pad_left = size - 1
  return pad_left, pad_total


def conv_transpose1d(x, kernel, stride=1, padding="SAME", winograd=False,
                     fourier=False):
  """Transposed 1-D convolution as one stride-1 polyphase convolution.

  Equals `jax.lax.conv_transpose(x, kernel, (stride,), padding)` with NWC /
  WIO / NWC layouts (the kernel is not flipped: transpose_kernel=False).
  With zero-upsampled input u (u[s*i] = x[i]) and left padding a, output
  sample o = s*q + r is sum_j kernel[j] u[o + j - a]: only taps j with
  j = a - r (mod s) contribute, reading x[q + (r + j - a) / s]. Each phase
  r is thus a short correlation of x itself; stacking the s phase kernels
  along the output channels gives one convolution.

  Args:
    x: [batch, length, in_channels].
    kernel: [kernel_size, in_channels, out_channels].
    stride: int.
    padding: 'SAME' (length * stride outputs) or 'VALID'
      (length * stride + max(kernel_size - stride, 0) outputs).
    winograd: Winograd stride-1 correlation on wide layers (see above).
    fourier: overlap-save DFT correlation on wide layers with enough
      windows, Winograd (if `winograd`) or direct on the others.

  Returns:
    [batch, out_length, out_channels].
  """
  padding = check_args(x, kernel, stride, padding, "conv_transpose1d")
  length, size = x.shape[1], kernel.shape[0]
  pad_left, pad_total = _transpose_padding(size, stride, padding)
  out_length = (length - 1) * stride + 1 + pad_total - size + 1
  if _use_taps_forward(x, kernel, stride):
    return _taps_forward(x, kernel, stride, pad_left, out_length, winograd,
                         fourier)
  return _polyphase_transpose(x, kernel, stride, pad_left, out_length,
                              winograd, fourier)


def _polyphase_transpose(x, kernel, stride, pad_left, out_length, winograd,
                         fourier):
  """conv_transpose1d's stride-1 polyphase form (see its docstring)."""
  batch, length = x.shape[0], x.shape[1]
  size, in_channels, out_channels = kernel.shape
  phase_length = -(-out_length // stride)
  # Phase r: first tap c_r = (a - r) mod s reads x[q + e_r], e_r integer.
  first_tap = [(pad_left - r) % stride for r in range(stride)]
  offset = [(r + first_tap[r] - pad_left) // stride for r in range(stride)]
  start = min(offset)
  taps = max(offset[r] - start + -(-(size - first_tap[r]) // stride)
             for r in range(stride))
  # Phase r: kernel taps c_r, c_r + s, ... at combined taps from
  # offset[r] - start on, zeros around them; the phases side by side in
  # the output channels.
  phases = []
  for r in range(stride):
    part = kernel[first_tap[r]::stride]
    before = offset[r] - start
    phases.append(jnp.pad(part, ((before, taps - before - part.shape[0]),
                                 (0, 0), (0, 0))))
  kernel = jnp.stack(phases, axis=2).reshape(
      taps, in_channels, stride * out_channels)
  # x[q + start + t] for q < phase_length, t < taps; zeros off the ends.
  x = _pad_or_crop(x, -start, phase_length + taps - 1 + start - length)
  y = _stride1(x, kernel, winograd, fourier)  # [B, phase_length, s*Cout]
  y = y.reshape(batch, phase_length * stride, out_channels)
  return y[:, :out_length]


def _taps_matmul_transpose(x, kernel, stride, pad_left, out_length):
  """conv_transpose1d as one matmul per kernel tap, then overlap-add.

  x[i] @ kernel[j] lands on output sample stride*i + pad_left - j; the
  matmul reads the kernel as it is stored (no rearranged or transformed
  copy), and the overlap-add sums ceil(K / stride) shifted slices.
  """
  batch, length, _ = x.shape
  size, _, out_channels = kernel.shape
  groups = -(-size // stride)
  # Taps flipped (j' = size - 1 - j), so that x[i] @ kernel[j] lands on
  # stride * i + j' of the accumulator, j' = stride * m + c: block i + m,
  # phase c.
  y = jnp.einsum("bli,jio->bljo", x, kernel)[:, :, ::-1]
  y = jnp.pad(y, ((0, 0), (0, 0), (0, groups * stride - size), (0, 0)))
  y = y.reshape(batch, length, groups, stride, out_channels)
  acc = sum(jnp.pad(y[:, :, m], ((0, 0), (m, groups - 1 - m), (0, 0),
                                 (0, 0)))
            for m in range(groups))
  acc = acc.reshape(batch, (length + groups - 1) * stride, out_channels)
  start = size - 1 - pad_left
  return _pad_or_crop(acc, -start, out_length + start - acc.shape[1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _taps_forward(x, kernel, stride, pad_left, out_length, winograd, fourier):
  """`_taps_matmul_transpose` where nothing differentiates it; under
  reverse-mode autodiff the polyphase form, forward and gradients.

  In a train step the backward rearranges the kernel anyway, so the
  forward shares that copy; per-tap matmuls pay only in inference.
  """
  return _taps_matmul_transpose(x, kernel, stride, pad_left, out_length)


def _taps_forward_fwd(x, kernel, stride, pad_left, out_length, winograd,
                      fourier):
  # The polyphase form's output and its vjp function (the residual).
  return jax.vjp(lambda x, kernel: _polyphase_transpose(
      x, kernel, stride, pad_left, out_length, winograd, fourier), x, kernel)


def _taps_forward_bwd(stride, pad_left, out_length, winograd, fourier,
                      polyphase_vjp, grad_y):
  return polyphase_vjp(grad_y)


_taps_forward.defvjp(_taps_forward_fwd, _taps_forward_bwd)


def _use_taps_forward(x, kernel, stride):
  """Whether conv_transpose1d's forward runs as per-tap matmuls.

  Where the kernel outweighs the activations (batch x length <= in
  channels: the per-tap products [B, L, K, Cout] are no larger than the
  kernel that the polyphase form copies into its layout and, for Winograd,
  transforms on every call), or where the polyphase correlation would have
  at most TAPS_MAX_PHASE_CHANNELS output channels (stride x Cout: a
  generator's last layer, where a convolution with so few outputs runs far
  below the matmul rate).
  """
  batch, length, in_channels = x.shape
  out_channels = kernel.shape[2]
  return (batch * length <= in_channels
          or stride * out_channels <= TAPS_MAX_PHASE_CHANNELS)


def select(impl, fast, reference):
  """The function of `impl` given the fast and reference forms of an op.

  'auto' returns conv_auto.auto_conv for the op (a function that also
  takes `initializing`).
  """
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
  if impl == "auto":
    # Imported on use: conv_auto imports this module.
    conv_auto = importlib.import_module("wavegan_jax.models.conv_auto")
    return functools.partial(conv_auto.auto_conv, fast.__name__)
  if impl == "winograd":
    return functools.partial(fast, winograd=True)
  if impl == "fourier":
    return functools.partial(fast, winograd=True, fourier=True)
  return fast if impl == "fast" else reference


class Conv1D(nn.Module):
  """1-D convolution layer; params `kernel` [K, Cin, Cout] and `bias`."""
  features: int
  kernel_size: int
  stride: int = 1
  padding: str = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  impl: str = "fast"

  def _implementations(self):
    """(fast, reference) functions of this layer."""
    return conv1d, conv1d_reference

  def _conv(self):
    """This layer's function (x, kernel, stride, padding) under `impl`."""
    conv = select(self.impl, *self._implementations())
    if self.impl == "auto":
      conv = functools.partial(conv, initializing=self.is_initializing())
    return conv

  @nn.compact
  def __call__(self, x):
    conv = self._conv()
    kernel = self.param("kernel", self.kernel_init,
                        (self.kernel_size, x.shape[-1], self.features))
    # Params stay float32; x's dtype (e.g. bfloat16) is the computation's.
    # (Winograd and Fourier transform in float32: cast back.)
    y = conv(x, kernel.astype(x.dtype), self.stride,
             self.padding).astype(x.dtype)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,))
      y = y + bias.astype(y.dtype)
    return y


class ConvTranspose1D(Conv1D):
  """Transposed 1-D convolution; params `kernel` [K, Cin, Cout], `bias`."""

  def _implementations(self):
    return conv_transpose1d, conv_transpose1d_reference


def nn_upsample_kernel(kernel, factor):
  """The transposed-convolution kernel of `NNUpsampleConv1D`.

  Repeating each sample `factor` times is zero insertion followed by a box
  of `factor` ones, so a correlation after it is a correlation of the
  zero-inserted signal with the kernel's running sum over `factor` taps:
  out[t] = sum_{i < factor} kernel[t - i], for t < kernel_size + factor - 1.
  """
  size = kernel.shape[0]
  padded = jnp.pad(kernel, ((factor - 1, factor - 1), (0, 0), (0, 0)))
  return sum(padded[factor - 1 - i:factor - 1 - i + size + factor - 1]
             for i in range(factor))


def nn_upsample_conv1d_reference(x, kernel, factor):
  """`jnp.repeat(x, factor)` then a stride-1 'SAME' correlation (lax)."""
  return conv1d_reference(jnp.repeat(x, factor, axis=1), kernel, 1, "SAME")


class NNUpsampleConv1D(ConvTranspose1D):
  """Nearest-neighbour upsampling by `stride`, then a stride-1 'SAME' conv.

  Computed as one transposed convolution (stride `stride`, kernel
  `nn_upsample_kernel`) on the short input: each output needs
  ceil((kernel_size + stride - 1) / stride) taps per phase instead of
  kernel_size at the upsampled rate (7 against 25 for 25 taps and stride
  4). Params (`kernel` [K, Cin, Cout], `bias`) and output equal those of
  `Conv1D(features, kernel_size, 1, 'SAME')` on `jnp.repeat(x, stride)`;
  `padding` must stay 'SAME'.
  """

  def _conv(self):
    transpose = None if self.impl == "reference" else super()._conv()
    # SAME's left offset after the repeat, counted on the zero-inserted
    # signal: (K - 1) // 2 taps plus the box's factor - 1.
    offset = (self.kernel_size - 1) // 2 + self.stride - 1

    def conv(x, kernel, factor, padding):
      if padding != "SAME":
        raise ValueError(f"NNUpsampleConv1D: padding must be 'SAME', got "
                         f"{padding!r}")
      if transpose is None:
        return nn_upsample_conv1d_reference(x, kernel, factor)
      merged = nn_upsample_kernel(kernel, factor)
      size = merged.shape[0]
      if _transpose_padding(size, factor, "SAME")[0] == offset:
        return transpose(x, merged, factor, "SAME")
      # Even kernel sizes: the full output, then SAME's window.
      start = size - 1 - offset
      return transpose(x, merged, factor, "VALID")[
          :, start:start + x.shape[1] * factor]
    return conv
