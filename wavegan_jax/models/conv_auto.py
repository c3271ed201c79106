"""conv_impl='auto': per layer shape and backend, the fastest exact form.

Every form in conv.py equals XLA's convolution (`impl='reference'`) within
float32 rounding (tests/conv_test.py checks each), but which one is fastest
depends on the host: the Fourier form won the critic step on the AVX2 hosts
of the README's tables, the Winograd form generated faster on an AVX-512
host (issue 39). So 'auto' decides per layer:

* On GPU and TPU: XLA's native convolution ('reference'); the polyphase,
  Winograd and Fourier forms exist because of XLA:CPU's slow strided and
  transposed convolutions.
* On CPU: the candidates CANDIDATES are timed on the layer's shapes, once,
  at the first trace that needs them (shapes are static under jit, so the
  choice is made while tracing and the compiled program holds one form).
  Two modes are timed separately: 'forward' (the layer's output alone, as
  in generation) and 'train' (output and both gradients, as in a train
  step). A layer whose forward and train choices differ runs the forward
  choice when nothing differentiates it and the train choice's value and
  gradients under reverse-mode autodiff (a custom_vjp, as conv.py's per-tap
  forward). Candidates that lower to the same program (e.g. Winograd and
  Fourier on a narrow layer, which both keep the direct convolution) are
  timed once. The choices are cached in a JSON file, per host fingerprint
  (CPU model, SIMD flags, core count, jax version, backend, device kind),
  so later processes on the same host type reuse them.
* Layers under AUTO_MIN_FLOPS, layers traced during `init`, and every layer
  when WAVEGAN_CONV_AUTO=rule: the rule RULE_IMPL (the Fourier form, the
  fixed default before 'auto'), with no timing.

Environment: WAVEGAN_CONV_CACHE (the cache file; default
$XDG_CACHE_HOME/wavegan_jax/conv_auto.json, XDG_CACHE_HOME defaulting to
~/.cache); WAVEGAN_CONV_AUTO ('time', the default, or 'rule').
"""

import functools
import hashlib
import json
import os
import tempfile
import threading
import time

from absl import logging
import jax
import numpy as np

from wavegan_jax import host
from wavegan_jax.models import conv

# Timed on CPU, most accurate first: on a near tie (TIE_FRACTION) the
# earlier one wins. 'fast' is the direct polyphase convolution (per-tap
# matmuls where conv.py's rule says so), 'reference' XLA's own.
CANDIDATES = ("fast", "fourier", "reference", "winograd")
# XLA:CPU's native form is timed only where it is never the slow path: on
# WaveGAN d=64 layers its transposed convolutions and the gradients of its
# strided ones took up to 31-36 s per call, against at most 0.8 s for the
# best other form (docs/performance_auto.md); one warm-up call costs that.
CPU_NATIVE_CASES = (("conv1d", "forward"),)
MODES = ("forward", "train")
OPS = ("conv1d", "conv_transpose1d")
RULE_IMPL = "fourier"
ACCELERATOR_IMPL = "reference"
# Below this many multiply-adds x 2 (a layer of about a millisecond on a
# 2-core CPU) the forms differ by less than the timing noise.
AUTO_MIN_FLOPS = 1e8
TIE_FRACTION = 0.03
# The rule's form is kept unless another is this much faster.
SWITCH_FRACTION = 0.1
# Timed rounds after one warm-up call each: at least MIN_REPEATS, and at
# least MIN_SECONDS per candidate.
MIN_REPEATS = 3
MIN_SECONDS = 0.3
# A candidate whose warm-up call is this many times the best warm-up is
# not timed further.
GIVE_UP_FACTOR = 4.0
CACHE_VERSION = 1
# ISA extensions that decide float32 throughput (x86, then Arm).
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
              "amx_tile", "amx_bf16", "asimd", "sve", "sve2")

_lock = threading.RLock()
_choices = {}  # (cache path, fingerprint key, layer key) -> impl


def cache_path():
  """The JSON cache file: $WAVEGAN_CONV_CACHE, else under XDG_CACHE_HOME."""
  path = os.environ.get("WAVEGAN_CONV_CACHE")
  if path:
    return os.path.abspath(os.path.expanduser(path))
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache")
  return os.path.join(base, "wavegan_jax", "conv_auto.json")


def _backend():
  return jax.default_backend()


@functools.lru_cache(maxsize=None)
def _cpu(cpuinfo_path):
  """(CPU model name, ISA flags present) from /proc/cpuinfo."""
  cpu, isa = host.cpu_and_flags(cpuinfo_path, _ISA_FLAGS)
  return cpu, tuple(isa)


def host_fingerprint(cpuinfo_path="/proc/cpuinfo"):
  """What a timing depends on: {'cpu', 'isa', 'cores', 'jax', 'backend',
  'device_kind'}."""
  cpu, isa = _cpu(cpuinfo_path)
  backend = _backend()
  try:
    device_kind = jax.devices(backend)[0].device_kind
  except RuntimeError:  # A backend named by a test, not present here.
    device_kind = "unknown"
  return {"cpu": cpu, "isa": list(isa), "cores": os.cpu_count(),
          "jax": jax.__version__, "backend": backend,
          "device_kind": device_kind}


def fingerprint_key(fingerprint):
  """A short stable hash of a `host_fingerprint` dict."""
  text = json.dumps(fingerprint, sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def layer_key(op, x_shape, kernel_shape, stride, padding, dtype, mode):
  """The cache key of one layer shape and mode."""
  return (f"{op} x={'x'.join(map(str, x_shape))} "
          f"k={'x'.join(map(str, kernel_shape))} s={stride} {padding} "
          f"{np.dtype(dtype).name} {mode}")


def load_cache(path):
  """{fingerprint key: {'fingerprint', 'choices'}} from `path` ({} if
  absent). A file that is not this cache raises ValueError naming it."""
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as error:
    raise ValueError(f"{path}: not a conv_impl='auto' cache ({error}); "
                     "delete it to re-time") from error
  if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
    raise ValueError(f"{path}: not a version-{CACHE_VERSION} "
                     "conv_impl='auto' cache; delete it to re-time")
  return data["hosts"]


def _store(path, fingerprint, key, choice):
  """Adds one choice to the cache file (atomic replace, merged with what
  other processes wrote meanwhile)."""
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  hosts = load_cache(path)
  host = hosts.setdefault(fingerprint_key(fingerprint),
                          {"fingerprint": fingerprint, "choices": {}})
  host["choices"][key] = choice
  handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
  os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from others.
  with os.fdopen(handle, "w") as f:
    json.dump({"version": CACHE_VERSION, "hosts": hosts}, f, indent=1,
              sort_keys=True)
  os.replace(temporary, path)


def clear_cache(path=None):
  """Deletes the cache file and this process's choices."""
  path = path or cache_path()
  with _lock:
    _choices.clear()
    if os.path.exists(path):
      os.remove(path)


def _flops(op, x_shape, kernel_shape, stride):
  """2 x the layer's multiply-adds (every input position of a transposed
  convolution, every output position of a strided one, meets the kernel)."""
  batch, length, _ = x_shape
  size, in_channels, out_channels = kernel_shape
  positions = length if op == "conv_transpose1d" else -(-length // stride)
  return 2.0 * batch * positions * size * in_channels * out_channels


def _function(op, impl):
  """The convolution function of one impl."""
  fast = conv.conv1d if op == "conv1d" else conv.conv_transpose1d
  reference = (conv.conv1d_reference if op == "conv1d"
               else conv.conv_transpose1d_reference)
  return conv.select(impl, fast, reference)


def _workload(op, impl, stride, padding, mode):
  """f(x, kernel, cotangent): the layer's output, or output and grads."""
  conv_fn = _function(op, impl)

  def forward(x, kernel, cotangent):
    del cotangent
    return conv_fn(x, kernel, stride, padding)

  def train(x, kernel, cotangent):
    y, vjp = jax.vjp(lambda a, b: conv_fn(a, b, stride, padding), x, kernel)
    return (y,) + vjp(cotangent)
  return forward if mode == "forward" else train


def candidates_for(op, mode):
  """The forms timed for one op and mode on CPU (CANDIDATES' order)."""
  return tuple(impl for impl in CANDIDATES
               if impl != "reference" or (op, mode) in CPU_NATIVE_CASES)


def time_candidates(op, x_shape, kernel_shape, stride, padding, dtype, mode,
                    candidates=None):
  """Seconds per call of each distinct candidate: {impl: seconds}.

  Candidates whose jaxpr equals an earlier one's share its time. After one
  warm-up call each, the candidates are timed in alternation (rounds of one
  call each, so that a burst of other load hits them alike) and each keeps
  its fastest call; one whose warm-up is GIVE_UP_FACTOR times the best
  warm-up is left out of the rounds and keeps its warm-up time.
  """
  candidates = candidates or candidates_for(op, mode)
  rng = np.random.default_rng(0)
  x = rng.standard_normal(x_shape).astype(dtype)
  kernel = (rng.standard_normal(kernel_shape) / np.sqrt(
      kernel_shape[0] * kernel_shape[1])).astype(dtype)
  out_shape = jax.eval_shape(
      lambda a, b: _function(op, "fast")(a, b, stride, padding),
      x, kernel).shape
  cotangent = rng.standard_normal(out_shape).astype(dtype)
  args = (x, kernel, cotangent)

  def call(compiled):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    return time.perf_counter() - start

  compiled, same_as, seconds, programs = {}, {}, {}, {}
  for impl in candidates:
    fn = _workload(op, impl, stride, padding, mode)
    program = str(jax.make_jaxpr(fn)(*args))
    if program in programs:
      same_as[impl] = programs[program]
      continue
    programs[program] = impl
    compiled[impl] = jax.jit(fn).lower(*args).compile()
    seconds[impl] = call(compiled[impl])  # The warm-up.
  best = min(seconds.values())
  timed = [impl for impl in compiled
           if seconds[impl] <= GIVE_UP_FACTOR * best]
  rounds, started = 0, time.perf_counter()
  while (rounds < MIN_REPEATS
         or time.perf_counter() - started < MIN_SECONDS * len(timed)):
    for impl in timed:
      elapsed = call(compiled[impl])
      seconds[impl] = elapsed if rounds == 0 else min(seconds[impl], elapsed)
    rounds += 1
  for impl, other in same_as.items():
    seconds[impl] = seconds[other]
  return seconds


def fastest(seconds, candidates=CANDIDATES, incumbent=RULE_IMPL):
  """The form 'auto' runs given {impl: seconds}.

  The rule's form (`incumbent`) stays unless another is SWITCH_FRACTION
  faster (a single-layer timing on a busy host is noisy; the rule is the
  measured whole-model default). Otherwise the fastest; within
  TIE_FRACTION of it, the earlier in `candidates` (the more accurate).
  """
  best = min(seconds.values())
  if (incumbent in seconds
      and seconds[incumbent] <= best * (1 + SWITCH_FRACTION)):
    return incumbent
  for impl in candidates:
    if impl in seconds and seconds[impl] <= best * (1 + TIE_FRACTION):
      return impl
  raise ValueError(f"no timed candidate in {sorted(seconds)}")


def _policy():
  policy = os.environ.get("WAVEGAN_CONV_AUTO", "time")
  if policy not in ("time", "rule"):
    raise ValueError(f"WAVEGAN_CONV_AUTO must be 'time' or 'rule', got "
                     f"{policy!r}")
  return policy


def untimed_choice(op, x_shape, kernel_shape, stride, initializing=False):
  """The impl 'auto' runs without timing, or None where it times.

  ACCELERATOR_IMPL off CPU; RULE_IMPL for layers under AUTO_MIN_FLOPS, for
  a Flax `init` trace (`initializing`) and under WAVEGAN_CONV_AUTO=rule.
  """
  policy = _policy()
  if _backend() != "cpu":
    return ACCELERATOR_IMPL
  if (initializing or policy == "rule"
      or _flops(op, x_shape, kernel_shape, stride) < AUTO_MIN_FLOPS):
    return RULE_IMPL
  return None


def choose(op, x_shape, kernel_shape, stride, padding, dtype, mode,
           initializing=False):
  """The impl 'auto' runs for one layer: a name in conv.IMPLEMENTATIONS.

  Args:
    op: 'conv1d' or 'conv_transpose1d'.
    x_shape: the input's static shape (under jit, the traced shape).
    kernel_shape: the kernel's shape.
    stride: as conv1d / conv_transpose1d.
    padding: 'SAME' or 'VALID'.
    dtype: the computation's dtype.
    mode: 'forward' (output only) or 'train' (output and gradients).
    initializing: a Flax `init` trace: no timing.

  Returns:
    `untimed_choice` where it applies, else the cached choice of this host
    fingerprint, else the fastest of a new timing (then cached).
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
  if op not in OPS:
    raise ValueError(f"op must be one of {OPS}, got {op!r}")
  fixed = untimed_choice(op, x_shape, kernel_shape, stride, initializing)
  if fixed is not None:
    return fixed
  key = layer_key(op, x_shape, kernel_shape, stride, padding, dtype, mode)
  path = cache_path()
  with _lock:
    fingerprint = host_fingerprint()
    memo_key = (path, fingerprint_key(fingerprint), key)
    if memo_key not in _choices:
      host = load_cache(path).get(fingerprint_key(fingerprint), {})
      choice = host.get("choices", {}).get(key)
      if (not isinstance(choice, dict)
          or choice.get("impl") not in candidates_for(op, mode)):
        # Eagerly, also when called while tracing an outer jit.
        with jax.ensure_compile_time_eval():
          start = time.perf_counter()
          seconds = time_candidates(op, tuple(x_shape), tuple(kernel_shape),
                                    stride, padding, dtype, mode)
          spent = time.perf_counter() - start
        choice = {"impl": fastest(seconds), "seconds": seconds,
                  "timing_seconds": round(spent, 3)}
        logging.info("conv_impl='auto': %s -> %s (%.1f s of timing: %s)",
                     key, choice["impl"], spent, seconds)
        _store(path, fingerprint, key, choice)
      _choices[memo_key] = choice["impl"]
    return _choices[memo_key]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _by_mode(x, kernel, op, stride, padding):
  """The 'forward' choice's output; under reverse-mode autodiff the 'train'
  choice's output and gradients (each chosen when first traced)."""
  impl = choose(op, x.shape, kernel.shape, stride, padding, x.dtype,
                "forward")
  return _function(op, impl)(x, kernel, stride, padding)


def _by_mode_fwd(x, kernel, op, stride, padding):
  impl = choose(op, x.shape, kernel.shape, stride, padding, x.dtype, "train")
  return jax.vjp(lambda a, b: _function(op, impl)(a, b, stride, padding),
                 x, kernel)


def _by_mode_bwd(op, stride, padding, train_vjp, grad_y):
  del op, stride, padding
  return train_vjp(grad_y)


_by_mode.defvjp(_by_mode_fwd, _by_mode_bwd)


def auto_conv(op, x, kernel, stride=1, padding="SAME", initializing=False):
  """conv1d (op 'conv1d') or conv_transpose1d by the form 'auto' picks.

  Args:
    op: 'conv1d' or 'conv_transpose1d'.
    x: [batch, length, in_channels].
    kernel: [kernel_size, in_channels, out_channels].
    stride: int.
    padding: 'SAME' or 'VALID'.
    initializing: a Flax `init` trace (the rule, no timing).

  Returns:
    The convolution, equal to the reference within float32 rounding.
  """
  if op not in OPS:
    raise ValueError(f"op must be one of {OPS}, got {op!r}")
  padding = conv.check_args(x, kernel, stride, padding, op)
  fixed = untimed_choice(op, x.shape, kernel.shape, stride, initializing)
  if fixed is not None:
    return _function(op, fixed)(x, kernel, stride, padding)
  return _by_mode(x, kernel, op, stride, padding)
