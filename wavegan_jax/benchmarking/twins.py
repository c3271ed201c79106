"""Section 1: WaveGAN in this project's JAX and in a PyTorch twin.

The PyTorch models copy the architecture layer for layer (same parameter
counts, 'SAME' padding, phase shuffle), so the two sides run the same
arithmetic; both are warmed up and then timed alternately in one process.
PyTorch is imported only when a TorchWaveGAN is built.

When PyTorch sees a CUDA GPU, its side runs there, in float32 and in
bfloat16 (autocast: float32 params, bfloat16 products), and the JAX side
runs its models with compute_dtype 'float32' and 'bfloat16' on JAX's
default backend (a GPU with jax[cuda12] installed: setup.py's 'cuda'
extra). Both devices are printed.
"""

import platform
import statistics
import time

from absl import logging
import jax
import jax.numpy as jnp
import optax

from wavegan_jax.models import conv
from wavegan_jax.models import wavegan

LATENT_DIM = 100
KERNEL_LEN = 25
GP_WEIGHT = 10.0
WORKLOADS = ("generate", "g_step", "d_step")
# Runner-name suffix of each compute dtype.
_DTYPE_SUFFIX = {"float32": "", "bfloat16": "_bf16"}


def _adam():
  return optax.adam(1e-4, b1=0.5, b2=0.9)


class JaxWaveGAN:
  """Compiled JAX workloads; each call blocks until its result is ready."""

  def __init__(self, dim, slice_len, batch_size, conv_impl, seed=0,
               compute_dtype="float32", upsample="zeros"):
    self.name = f"jax_{conv_impl}" + _DTYPE_SUFFIX[compute_dtype]
    generator = wavegan.WaveGANGenerator(
        dim=dim, slice_len=slice_len, conv_impl=conv_impl,
        compute_dtype=compute_dtype, upsample=upsample)
    discriminator = wavegan.WaveGANDiscriminator(
        dim=dim, slice_len=slice_len, conv_impl=conv_impl,
        compute_dtype=compute_dtype)
    g_key, d_key, real_key, self._key = jax.random.split(
        jax.random.key(seed), 4)
    g_params = generator.init(g_key, jnp.zeros((1, LATENT_DIM)))
    d_params = discriminator.init(d_key, jnp.zeros((1, slice_len, 1)))
    self.param_counts = (wavegan.count_params(g_params),
                         wavegan.count_params(d_params))
    optimizer = _adam()
    self._g_state = {"params": g_params, "opt": optimizer.init(g_params)}
    self._d_state = {"params": d_params, "opt": optimizer.init(d_params)}
    self._real = jax.random.uniform(real_key, (batch_size, slice_len, 1),
                                    minval=-0.5, maxval=0.5)
    self._z = jax.random.uniform(self._key, (batch_size, LATENT_DIM),
                                 minval=-1.0, maxval=1.0)

    def sample_z(rng):
      return jax.random.uniform(rng, (batch_size, LATENT_DIM), minval=-1.0,
                                maxval=1.0)

    def generate(g_params, z):
      return generator.apply(g_params, z)

    def g_step(g_state, d_params, rng):
      z_rng, shuffle_rng = jax.random.split(rng)

      def loss_fn(g_params):
        fake = generator.apply(g_params, sample_z(z_rng))
        return -jnp.mean(discriminator.apply(d_params, fake, shuffle_rng))
      loss, grads = jax.value_and_grad(loss_fn)(g_state["params"])
      updates, opt = optimizer.update(grads, g_state["opt"])
      params = optax.apply_updates(g_state["params"], updates)
      return {"params": params, "opt": opt}, loss

    def d_step(d_state, g_params, real, rng):
      z_rng, mix_rng, real_rng, fake_rng, mix_shuffle_rng = jax.random.split(
          rng, 5)
      fake = jax.lax.stop_gradient(generator.apply(g_params, sample_z(z_rng)))
      alpha = jax.random.uniform(mix_rng, (real.shape[0], 1, 1))
      mixed = real + alpha * (fake - real)

      def loss_fn(d_params):
        critic = lambda x, r: discriminator.apply(d_params, x, r)
        wasserstein = (jnp.mean(critic(fake, fake_rng))
                       - jnp.mean(critic(real, real_rng)))
        grad = jax.grad(lambda x: jnp.sum(critic(x, mix_shuffle_rng)))(mixed)
        norm = jnp.sqrt(jnp.sum(grad ** 2, axis=(1, 2)))
        return wasserstein + GP_WEIGHT * jnp.mean((norm - 1.0) ** 2)
      loss, grads = jax.value_and_grad(loss_fn)(d_state["params"])
      updates, opt = optimizer.update(grads, d_state["opt"])
      params = optax.apply_updates(d_state["params"], updates)
      return {"params": params, "opt": opt}, loss

    rng = jax.random.key(1)
    self.compile_seconds = {}
    self.compiled = {}
    for name, fn, donate, args in (
        ("generate", generate, (), (g_params, self._z)),
        ("g_step", g_step, (0,), (self._g_state, d_params, rng)),
        ("d_step", d_step, (0,), (self._d_state, g_params, self._real, rng))):
      start = time.perf_counter()
      self.compiled[name] = jax.jit(fn, donate_argnums=donate).lower(
          *args).compile()
      self.compile_seconds[name] = time.perf_counter() - start
    self._step = 0

  def _next_rng(self):
    self._step += 1
    return jax.random.fold_in(self._key, self._step)

  def run(self, workload):
    """Runs one workload to completion."""
    if workload == "generate":
      out = self.compiled["generate"](self._g_state["params"], self._z)
    elif workload == "g_step":
      self._g_state, out = self.compiled["g_step"](
          self._g_state, self._d_state["params"], self._next_rng())
    else:
      self._d_state, out = self.compiled["d_step"](
          self._d_state, self._g_state["params"], self._real, self._next_rng())
    jax.block_until_ready(out)


def _same_padding(length, size, stride):
  """TensorFlow 'SAME' (left, right) padding of a strided convolution."""
  out_length = -(-length // stride)
  total = max((out_length - 1) * stride + size - length, 0)
  return total // 2, total - total // 2




def _torch():
  """PyTorch, imported on first use (the `bench` extra installs it)."""
  import torch  # pylint: disable=g-import-not-at-top
  return torch


def torch_device(torch):
  """('cuda', the GPU's name) when PyTorch sees a GPU, else ('cpu', the
  CPU's name)."""
  if torch.cuda.is_available():
    return "cuda", torch.cuda.get_device_name(0)
  return "cpu", platform.processor() or platform.machine()


def compute_dtypes(device):
  """The precisions section 1 times on a PyTorch device: bfloat16 beside
  float32 on a GPU only (XLA:CPU and PyTorch's CPU kernels are float32
  machines)."""
  return ("float32", "bfloat16") if device == "cuda" else ("float32",)


def _torch_models():
  """(TorchGenerator, TorchDiscriminator) classes, defined on first use."""
  torch = _torch()
  F = torch.nn.functional  # pylint: disable=invalid-name

  class TorchGenerator(torch.nn.Module):
    """WaveGAN generator in PyTorch, [B, 100] -> [B, 1, slice_len].

    upsample 'zeros': transposed convolutions; 'nn': each sample repeated
    `stride` times, then a stride-1 convolution ('SAME' padding).
    """

    def __init__(self, dim, slice_len, upsample="zeros"):
      super().__init__()
      self.length, channels, layers = wavegan.generator_layout(
          slice_len, dim, 1)
      self.strides = [stride for _, stride in layers]
      self.upsample = upsample
      self.z_project = torch.nn.Linear(LATENT_DIM, self.length * channels)
      convs = []
      for features, stride in layers:
        if upsample == "nn":
          convs.append(torch.nn.Conv1d(channels, features, KERNEL_LEN,
                                       padding="same"))
        else:
          # Output length exactly length * stride, as 'SAME'.
          extra = (KERNEL_LEN - stride) % 2
          convs.append(torch.nn.ConvTranspose1d(
              channels, features, KERNEL_LEN, stride,
              padding=(KERNEL_LEN - stride + extra) // 2,
              output_padding=extra))
        channels = features
      self.upconvs = torch.nn.ModuleList(convs)

    def forward(self, z):
      x = self.z_project(z).reshape(z.shape[0], self.length, -1)
      x = F.relu(x.transpose(1, 2))
      for i, (upconv, stride) in enumerate(zip(self.upconvs, self.strides)):
        if self.upsample == "nn":
          x = torch.repeat_interleave(x, stride, dim=-1)
        x = upconv(x)
        x = torch.tanh(x) if i == len(self.upconvs) - 1 else F.relu(x)
      return x


  class TorchDiscriminator(torch.nn.Module):
    """WaveGAN discriminator in PyTorch, [B, 1, slice_len] -> [B]."""

    def __init__(self, dim, slice_len, phaseshuffle_rad=2):
      super().__init__()
      self.rad = phaseshuffle_rad
      self.layers = wavegan.discriminator_layout(slice_len, dim)
      convs, channels, length = [], 1, slice_len
      for features, stride in self.layers:
        convs.append(torch.nn.Conv1d(channels, features, KERNEL_LEN, stride))
        channels, length = features, -(-length // stride)
      self.downconvs = torch.nn.ModuleList(convs)
      self.output = torch.nn.Linear(channels * length, 1)

    def forward(self, x):
      for i, (downconv, (_, stride)) in enumerate(
          zip(self.downconvs, self.layers)):
        x = downconv(F.pad(x, _same_padding(x.shape[-1], KERNEL_LEN, stride)))
        x = F.leaky_relu(x, 0.2)
        if i < 4 and self.rad:
          shift = int(torch.randint(-self.rad, self.rad + 1, ()))
          x = F.pad(x, (self.rad, self.rad), mode="reflect")
          x = x[..., self.rad - shift:self.rad - shift + x.shape[-1] - 2 *
                self.rad]
      return self.output(x.flatten(1))[:, 0]

  return TorchGenerator, TorchDiscriminator


class TorchWaveGAN:
  """The same three workloads in PyTorch (eager), on `device` ('cpu' or
  'cuda'), in `compute_dtype` (bfloat16 by autocast; params float32)."""

  def __init__(self, dim, slice_len, batch_size, seed=0, device="cpu",
               compute_dtype="float32", upsample="zeros"):
    self.name = "torch" + _DTYPE_SUFFIX[compute_dtype]
    torch = self._torch = _torch()
    torch.manual_seed(seed)
    self.device = device
    self._autocast = lambda: torch.autocast(
        device_type=device, dtype=torch.bfloat16,
        enabled=compute_dtype == "bfloat16")
    generator_class, discriminator_class = _torch_models()
    self.generator = generator_class(dim, slice_len, upsample).to(device)
    self.discriminator = discriminator_class(dim, slice_len).to(device)
    count = lambda m: sum(p.numel() for p in m.parameters())
    self.param_counts = (count(self.generator), count(self.discriminator))
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=1e-4,
                                      betas=(0.5, 0.9))
    self.g_optimizer = adam(self.generator)
    self.d_optimizer = adam(self.discriminator)
    self.batch_size = batch_size
    self.real = torch.rand(batch_size, 1, slice_len, device=device) - 0.5
    self.z = torch.rand(batch_size, LATENT_DIM, device=device) * 2 - 1
    self.compile_seconds = {name: 0.0 for name in WORKLOADS}

  def _sample_z(self):
    return self._torch.rand(self.batch_size, LATENT_DIM,
                            device=self.device) * 2 - 1

  def run(self, workload):
    """Runs one workload to completion."""
    with self._autocast():
      self._run(workload)
    if self.device == "cuda":
      self._torch.cuda.synchronize()

  def _run(self, workload):
    torch = self._torch
    if workload == "generate":
      with torch.no_grad():
        self.generator(self.z)
    elif workload == "g_step":
      self.discriminator.requires_grad_(False)
      self.g_optimizer.zero_grad(set_to_none=True)
      loss = -self.discriminator(self.generator(self._sample_z())).mean()
      loss.backward()
      self.g_optimizer.step()
      self.discriminator.requires_grad_(True)
    else:
      with torch.no_grad():
        fake = self.generator(self._sample_z())
      self.d_optimizer.zero_grad(set_to_none=True)
      alpha = torch.rand(self.batch_size, 1, 1, device=self.device)
      mixed = (self.real + alpha * (fake - self.real)).requires_grad_(True)
      wasserstein = (self.discriminator(fake).mean()
                     - self.discriminator(self.real).mean())
      grad, = torch.autograd.grad(self.discriminator(mixed).sum(), mixed,
                                  create_graph=True)
      norm = grad.flatten(1).pow(2).sum(1).sqrt()
      loss = wasserstein + GP_WEIGHT * ((norm - 1.0) ** 2).mean()
      loss.backward()
      self.d_optimizer.step()




def round_ratios(torch_times, jax_times):
  """(min, max) over the repeats of torch time / JAX time in one round.

  Each round times the implementations back to back, so a round's ratio
  sees about the same machine load on both sides; a wide range means the
  host was noisy during the run and the median ratio is less certain.
  """
  ratios = [t / j for t, j in zip(torch_times, jax_times, strict=True)]
  return min(ratios), max(ratios)


def wavegan_side_by_side(dim, slice_len, batch_size, repeats,
                         conv_impl=wavegan.DEFAULT_CONV_IMPL,
                         compare_impls=(), torch_threads=2, upsample="zeros"):
  """Section 1: WaveGAN in JAX and PyTorch, warmed up, timed alternately.

  Args:
    dim: model width d.
    slice_len: samples per example.
    batch_size: examples per batch.
    repeats: timed calls per (implementation, workload).
    conv_impl: the JAX convolutions compared with PyTorch (conv.py).
    compare_impls: other JAX convolutions timed beside it, e.g. ('fast',).
    torch_threads: PyTorch intra-op threads.
    upsample: the generators' upsampling, 'zeros' (the paper's transposed
      convolutions) or 'nn' (a repeat, then a stride-1 convolution; the
      default experiment's).

  On a GPU (PyTorch's device, `torch_device`) each side also runs in
  bfloat16 (runners 'jax_<conv_impl>_bf16', 'torch_bf16').

  Returns:
    (results, jax_runner): results is a JSON-ready dict with config (the
    devices included), jax_impl (the name of the compared JAX runner,
    'jax_<conv_impl>'),
    param_counts, compile_seconds, medians and all times (seconds) per
    implementation and workload, ratio_<workload> = torch median / jax_impl
    median, and ratio_<workload>_<impl> = jax_<impl> median / jax_impl
    median for each of compare_impls, ratio_<workload>_rounds = (min, max)
    of the per-round ratios (`round_ratios`), and on a GPU
    ratio_<workload>_bf16 = torch_bf16 median / jax_<conv_impl>_bf16
    median; jax_runner is the float32 conv_impl runner.
  """
  if upsample not in wavegan.UPSAMPLE_MODES:
    raise ValueError(f"upsample must be one of {wavegan.UPSAMPLE_MODES}, "
                     f"got {upsample!r}")
  impls = [conv_impl] + [i for i in compare_impls if i != conv_impl]
  for impl in impls:
    if impl not in conv.IMPLEMENTATIONS:
      raise ValueError(f"Unknown convolution implementation {impl!r}; "
                       f"expected one of {conv.IMPLEMENTATIONS}")
  torch = _torch()
  torch.set_num_threads(torch_threads)
  device, device_name = torch_device(torch)
  dtypes = compute_dtypes(device)
  print(f"WaveGAN devices: JAX {jax.devices()[0].device_kind} "
        f"({jax.default_backend()}), PyTorch {device_name} ({device}); "
        f"precisions {', '.join(dtypes)}")
  runners = []
  for impl in impls:
    logging.info("Compiling JAX (%s convolutions).", impl)
    runners.append(JaxWaveGAN(dim, slice_len, batch_size, impl,
                              upsample=upsample))
  for dtype in dtypes[1:]:
    runners.append(JaxWaveGAN(dim, slice_len, batch_size, conv_impl,
                              compute_dtype=dtype, upsample=upsample))
  for dtype in dtypes:
    runners.append(TorchWaveGAN(dim, slice_len, batch_size, device=device,
                                compute_dtype=dtype, upsample=upsample))
  logging.info("Timing %s, %d repeats.", [r.name for r in runners], repeats)
  times = {r.name: {w: [] for w in WORKLOADS} for r in runners}
  for runner in runners:  # Warm-up, excluded from the times.
    for workload in WORKLOADS:
      runner.run(workload)
  for _ in range(repeats):
    for workload in WORKLOADS:
      for runner in runners:
        start = time.perf_counter()
        runner.run(workload)
        times[runner.name][workload].append(time.perf_counter() - start)
  medians = {name: {w: statistics.median(t) for w, t in per.items()}
             for name, per in times.items()}
  primary = runners[0].name
  results = {
      "config": {"dim": dim, "slice_len": slice_len, "batch_size": batch_size,
                 "upsample": upsample,
                 "repeats": repeats, "torch_threads": torch_threads,
                 "jax_backend": jax.default_backend(),
                 "torch_version": torch.__version__,
                 "jax_version": jax.__version__,
                 "jax_device": jax.devices()[0].device_kind,
                 "torch_device": device_name, "torch_device_type": device,
                 "compute_dtypes": list(dtypes)},
      "jax_impl": primary,
      "param_counts": {r.name: {"generator": r.param_counts[0],
                                "discriminator": r.param_counts[1]}
                       for r in runners},
      "compile_seconds": {r.name: r.compile_seconds for r in runners},
      "medians": medians,
      "times": times,
  }
  for workload in WORKLOADS:
    jax_time = medians[primary][workload]
    results[f"ratio_{workload}"] = medians["torch"][workload] / jax_time
    results[f"ratio_{workload}_rounds"] = round_ratios(
        times["torch"][workload], times[primary][workload])
    for impl in impls[1:]:
      results[f"ratio_{workload}_{impl}"] = (
          medians[f"jax_{impl}"][workload] / jax_time)
    if "bfloat16" in dtypes:
      results[f"ratio_{workload}_bf16"] = (
          medians["torch_bf16"][workload]
          / medians[f"{primary}_bf16"][workload])
  return results, runners[0]
