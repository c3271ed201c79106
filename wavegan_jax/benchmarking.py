"""Benchmarks of this project's JAX code (issue 7), as library functions.

launch/benchmark.py is the entry point; every section lives here:
  wavegan:    WaveGAN d=64 generate / generator step / WGAN-GP critic step in
              JAX and in a PyTorch model of exactly the same architecture,
              timed alternately (see `wavegan_side_by_side`);
  generation: clips/s, real-time factor and achieved GFLOP/s of generation
              next to a float32 matrix-product peak measured in the same run;
  stages:     the AV-digits stages' train steps at batch 16;
  pipeline:   the input pipelines' examples/s next to what the steps consume.
Warm-up is excluded, compile time reported separately, times are medians.
PyTorch is imported only when the wavegan section runs.
"""

import os
import statistics
import tempfile
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from wavegan_jax.models import wavegan
from wavegan_jax.training import autoencoders
from wavegan_jax.training import av_generator
from wavegan_jax.training import checkpointing
from wavegan_jax.training import stage_runner
from wavegan_jax.training import wavegan_trainer

LATENT_DIM = 100
KERNEL_LEN = 25
GP_WEIGHT = 10.0
WORKLOADS = ("generate", "g_step", "d_step")


def _adam():
  return optax.adam(1e-4, b1=0.5, b2=0.9)


class JaxWaveGAN:
  """Compiled JAX workloads; each call blocks until its result is ready."""

  def __init__(self, dim, slice_len, batch_size, conv_impl, seed=0):
    self.name = f"jax_{conv_impl}"
    generator = wavegan.WaveGANGenerator(dim=dim, slice_len=slice_len,
                                         conv_impl=conv_impl)
    discriminator = wavegan.WaveGANDiscriminator(
        dim=dim, slice_len=slice_len, conv_impl=conv_impl)
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


def _torch_models():
  """(TorchGenerator, TorchDiscriminator) classes, defined on first use."""
  torch = _torch()
  F = torch.nn.functional  # pylint: disable=invalid-name

  class TorchGenerator(torch.nn.Module):
    """WaveGAN generator in PyTorch, [B, 100] -> [B, 1, slice_len]."""

    def __init__(self, dim, slice_len):
      super().__init__()
      self.length, channels, layers = wavegan.generator_layout(
          slice_len, dim, 1)
      self.z_project = torch.nn.Linear(LATENT_DIM, self.length * channels)
      convs = []
      for features, stride in layers:
        # Output length exactly length * stride, as 'SAME'.
        extra = (KERNEL_LEN - stride) % 2
        convs.append(torch.nn.ConvTranspose1d(
            channels, features, KERNEL_LEN, stride,
            padding=(KERNEL_LEN - stride + extra) // 2, output_padding=extra))
        channels = features
      self.upconvs = torch.nn.ModuleList(convs)

    def forward(self, z):
      x = self.z_project(z).reshape(z.shape[0], self.length, -1)
      x = F.relu(x.transpose(1, 2))
      for i, upconv in enumerate(self.upconvs):
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
  """The same three workloads in PyTorch (eager, CPU)."""

  def __init__(self, dim, slice_len, batch_size, seed=0):
    self.name = "torch"
    torch = self._torch = _torch()
    torch.manual_seed(seed)
    generator_class, discriminator_class = _torch_models()
    self.generator = generator_class(dim, slice_len)
    self.discriminator = discriminator_class(dim, slice_len)
    count = lambda m: sum(p.numel() for p in m.parameters())
    self.param_counts = (count(self.generator), count(self.discriminator))
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=1e-4,
                                      betas=(0.5, 0.9))
    self.g_optimizer = adam(self.generator)
    self.d_optimizer = adam(self.discriminator)
    self.batch_size = batch_size
    self.real = torch.rand(batch_size, 1, slice_len) - 0.5
    self.z = torch.rand(batch_size, LATENT_DIM) * 2 - 1
    self.compile_seconds = {name: 0.0 for name in WORKLOADS}

  def _sample_z(self):
    return self._torch.rand(self.batch_size, LATENT_DIM) * 2 - 1

  def run(self, workload):
    """Runs one workload to completion."""
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
      alpha = torch.rand(self.batch_size, 1, 1)
      mixed = (self.real + alpha * (fake - self.real)).requires_grad_(True)
      wasserstein = (self.discriminator(fake).mean()
                     - self.discriminator(self.real).mean())
      grad, = torch.autograd.grad(self.discriminator(mixed).sum(), mixed,
                                  create_graph=True)
      norm = grad.flatten(1).pow(2).sum(1).sqrt()
      loss = wasserstein + GP_WEIGHT * ((norm - 1.0) ** 2).mean()
      loss.backward()
      self.d_optimizer.step()




def _median_seconds(fn, repeats):
  """Median wall time of `repeats` calls of fn (which must block)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def wavegan_side_by_side(dim, slice_len, batch_size, repeats,
                         include_reference=False, torch_threads=2):
  """Section 1: WaveGAN in JAX and PyTorch, warmed up, timed alternately.

  Args:
    dim: model width d.
    slice_len: samples per example.
    batch_size: examples per batch.
    repeats: timed calls per (implementation, workload).
    include_reference: also time JAX with the reference convolutions.
    torch_threads: PyTorch intra-op threads.

  Returns:
    (results, jax_runner): results is a JSON-ready dict with config,
    param_counts, compile_seconds, medians and all times (seconds) per
    implementation and workload, and ratio_<workload> = torch median /
    jax_fast median (plus ratio_<workload>_reference = jax_reference /
    jax_fast when included); jax_runner is the fast JaxWaveGAN.
  """
  torch = _torch()
  torch.set_num_threads(torch_threads)
  impls = ["fast"] + (["reference"] if include_reference else [])
  runners = []
  for impl in impls:
    logging.info("Compiling JAX (%s convolutions).", impl)
    runners.append(JaxWaveGAN(dim, slice_len, batch_size, impl))
  runners.append(TorchWaveGAN(dim, slice_len, batch_size))
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
  results = {
      "config": {"dim": dim, "slice_len": slice_len, "batch_size": batch_size,
                 "repeats": repeats, "torch_threads": torch_threads,
                 "jax_backend": jax.default_backend(),
                 "torch_version": torch.__version__,
                 "jax_version": jax.__version__},
      "param_counts": {r.name: {"generator": r.param_counts[0],
                                "discriminator": r.param_counts[1]}
                       for r in runners},
      "compile_seconds": {r.name: r.compile_seconds for r in runners},
      "medians": medians,
      "times": times,
  }
  for workload in WORKLOADS:
    fast = medians["jax_fast"][workload]
    results[f"ratio_{workload}"] = medians["torch"][workload] / fast
    if include_reference:
      results[f"ratio_{workload}_reference"] = (
          medians["jax_reference"][workload] / fast)
  return results, runners[0]


def matmul_peak_gflops(size, repeats):
  """Float32 [size, size] @ [size, size] through jit: median GFLOP/s."""
  a, b = jax.random.normal(jax.random.key(0), (2, size, size), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(a, b))
  seconds = _median_seconds(lambda: jax.block_until_ready(matmul(a, b)),
                            repeats)
  return 2.0 * size ** 3 / seconds / 1e9


def generator_flops(dim, slice_len, batch_size):
  """Analytic FLOPs of one WaveGAN generator call (multiply-add = 2).

  The dense projection and each transposed convolution (every input sample
  meets all kernel taps: 2 * length_in * kernel * C_in * C_out); activations
  and bias adds are left out.
  """
  length, channels, layers = wavegan.generator_layout(slice_len, dim, 1)
  flops = 2 * LATENT_DIM * length * channels
  for features, stride in layers:
    flops += 2 * length * KERNEL_LEN * channels * features
    length, channels = length * stride, features
  return float(batch_size * flops)


def _xla_flops(compiled):
  """FLOPs from XLA's cost analysis of a compiled program, or None."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def generation(runner, dim, slice_len, batch_size, sample_rate, repeats,
               matmul_size):
  """Section 2: generation throughput against the matrix-product peak.

  Args:
    runner: a JaxWaveGAN at (dim, slice_len, batch_size) (fast convs).
    dim: model width d.
    slice_len: samples per clip.
    batch_size: clips per call.
    sample_rate: Hz, for the real-time factor.
    repeats: timed calls (also for the matmul peak).
    matmul_size: n of the n x n x n peak matrix product.

  Returns:
    A dict: seconds (median per batch), clips_per_s, real_time_factor
    (seconds of audio per second of compute), flops_analytic, flops_xla
    (None when XLA gives none), gflops (achieved, analytic count),
    gflops_xla, peak_gflops, matmul_size, and generate_peak_fraction =
    gflops / peak_gflops.
  """
  runner.run("generate")  # Warm-up.
  seconds = _median_seconds(lambda: runner.run("generate"), repeats)
  peak = matmul_peak_gflops(matmul_size, repeats)
  flops = generator_flops(dim, slice_len, batch_size)
  xla_flops = _xla_flops(runner.compiled["generate"])
  gflops = flops / seconds / 1e9
  return {
      "seconds": seconds, "clips_per_s": batch_size / seconds,
      "real_time_factor": batch_size * slice_len / sample_rate / seconds,
      "sample_rate": sample_rate, "flops_analytic": flops,
      "flops_xla": xla_flops, "gflops": gflops,
      "gflops_xla": xla_flops and xla_flops / seconds / 1e9,
      "peak_gflops": peak, "matmul_size": matmul_size,
      "generate_peak_fraction": gflops / peak,
  }


AV_STAGES = ("acoustic", "visual", "generator")


def _synthetic_batch(config, batch_size, seed):
  """A random batch of every field the AV-digits stages read."""
  data = config.data
  generator = np.random.default_rng(seed)
  size = data.frame_size
  return {
      "video": generator.integers(0, 256, (batch_size, data.num_frames, size,
                                           size, 1), dtype=np.uint8),
      "target": generator.uniform(-0.5, 0.5, (batch_size, data.num_samples)
                                  ).astype(np.float32),
      "reference": generator.uniform(-0.5, 0.5, (batch_size, data.num_samples)
                                     ).astype(np.float32),
  }


def av_stage_specs(config, workdir, manual_dir=None, data_dir=None):
  """The three AV-digits StageSpecs; the encoders exported at init.

  The generator stage restores the encoders from their exports, so freshly
  initialised encoder params are exported into `workdir` first (timing needs
  no training).
  """
  specs = {}
  for name in AV_STAGES[:2]:
    specs[name] = autoencoders.make_spec(config, name, manual_dir=manual_dir,
                                         data_dir=data_dir)
    checkpointing.export_params(stage_runner.export_path(workdir, name),
                                specs[name].export_fn(specs[name].init_fn()))
  specs["generator"] = av_generator.make_spec(
      config, workdir, manual_dir=manual_dir, data_dir=data_dir)
  return specs


def stage_steps(config, repeats):
  """Section 3: each AV-digits stage's jitted train step on synthetic data.

  Args:
    config: an experiments/av_digits.py config.
    repeats: timed steps per stage.

  Returns:
    {stage: {batch_size, compile_seconds, step_seconds (median),
    examples_per_s}}.
  """
  results = {}
  with tempfile.TemporaryDirectory() as workdir:
    specs = av_stage_specs(config, workdir)
    for name, spec in specs.items():
      batch_size = spec.train_config.batch_size
      batch = _synthetic_batch(config, batch_size, spec.seed)
      base_rng = jax.random.PRNGKey(spec.seed)
      state = spec.init_fn()
      start = time.perf_counter()
      step = jax.jit(spec.step_fn, donate_argnums=(0,)).lower(
          state, batch, base_rng).compile()
      compile_seconds = time.perf_counter() - start
      times = []
      for i in range(repeats + 1):  # The first call is the warm-up.
        start = time.perf_counter()
        state, metrics = step(state, batch, jax.random.fold_in(base_rng, i))
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - start)
      seconds = statistics.median(times[1:])
      results[name] = {"batch_size": batch_size,
                       "compile_seconds": compile_seconds,
                       "step_seconds": seconds,
                       "examples_per_s": batch_size / seconds}
  return results


def pipeline_examples_per_s(make_batches, batch_size, num_batches):
  """Examples/s of a host batch stream, after one warm-up batch.

  The warm-up batch pays for preparing the data set (when not prepared)
  and for filling tf.data's buffers; it is excluded.
  """
  batches = make_batches(0)
  next(batches)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(batches)
  return num_batches * batch_size / (time.perf_counter() - start)


def wavegan_consumption(wavegan_results):
  """Examples/s a WaveGAN train step consumes, from section 1's medians.

  A wavegan_trainer step of batch B reads B real examples, runs the critic
  updates on chunks that together cover them and one generator update on B
  fakes; both scale linearly with the examples, so at any batch it consumes
  b / (t_d_step + t_g_step) examples/s, with t measured at section 1's b.
  """
  medians = wavegan_results["medians"]["jax_fast"]
  return (wavegan_results["config"]["batch_size"]
          / (medians["d_step"] + medians["g_step"]))


def pipeline(stage_config, wavegan_config, manual_dir, data_dir,
             num_batches, stage_results=None, wavegan_results=None):
  """Section 4: input pipelines against what the train steps consume.

  Args:
    stage_config: the av_digits config (its train batch and fields).
    wavegan_config: the experiments/wavegan.py config (audio_folder, FSDD).
    manual_dir: the raw data folder (None: only prepared data is used).
    data_dir: the TFDS data dir (None: TFDS's default).
    num_batches: timed batches per stream.
    stage_results: section 3's results, for the AV-digits consumption.
    wavegan_results: section 1's results, for the WaveGAN consumption.

  Returns:
    {'streams': {stage: {dataset, batch_size, pipeline_examples_per_s,
    consumed_examples_per_s (None when its section did not run), ratio}},
    'skipped': {stage: reason}, 'pipeline_over_consumption_min': the least
    ratio (None when none could be formed)}.
  """
  streams, skipped = {}, {}
  with tempfile.TemporaryDirectory() as workdir:
    try:
      specs = av_stage_specs(stage_config, workdir, manual_dir, data_dir)
      specs["wavegan"] = wavegan_trainer.make_spec(
          wavegan_config, manual_dir=manual_dir, data_dir=data_dir)
    except Exception as error:  # pylint: disable=broad-except
      return {"streams": {}, "skipped": {"all": repr(error)},
              "pipeline_over_consumption_min": None}
    for name, spec in specs.items():
      batch_size = spec.train_config.batch_size
      try:
        produced = pipeline_examples_per_s(spec.make_batches, batch_size,
                                           num_batches)
      except Exception as error:  # pylint: disable=broad-except
        logging.warning("pipeline %s skipped: %r", name, error)
        skipped[name] = repr(error)
        continue
      if name == "wavegan":
        config = wavegan_config
        consumed = wavegan_results and wavegan_consumption(wavegan_results)
      else:
        config = stage_config
        consumed = stage_results and stage_results[name]["examples_per_s"]
      streams[name] = {
          "dataset": config.data.name, "batch_size": batch_size,
          "pipeline_examples_per_s": produced,
          "consumed_examples_per_s": consumed,
          "ratio": consumed and produced / consumed}
  ratios = [s["ratio"] for s in streams.values() if s["ratio"]]
  return {"streams": streams, "skipped": skipped,
          "pipeline_over_consumption_min": min(ratios) if ratios else None}


SECTIONS = ("wavegan", "generation", "stages", "pipeline")


def data_available(manual_dir, data_dir):
  """Why the pipeline section cannot run, or None when it can."""
  if manual_dir and os.path.isdir(manual_dir):
    return None
  if data_dir and os.path.isdir(data_dir):
    return None
  return (f"no data: --manual_dir ({manual_dir!r}, default "
          f"$WAVEGAN_MANUAL_DIR) and --data_dir ({data_dir!r}) are not "
          "folders")


def run_all(sections, *, dim, slice_len, batch_size, repeats, sample_rate,
            matmul_size, stage_config, stage_repeats, wavegan_config,
            manual_dir, data_dir, pipeline_batches, include_reference=False,
            torch_threads=2):
  """Runs the chosen sections in order in this process.

  Args:
    sections: names from SECTIONS.
    dim, slice_len, batch_size, repeats: section 1 (and 2's model).
    sample_rate: Hz of the generated clips (real-time factor).
    matmul_size: n of the peak matrix product.
    stage_config: the av_digits config (sections 3 and 4).
    stage_repeats: timed steps per AV-digits stage.
    wavegan_config: the wavegan config (section 4's audio_folder stream).
    manual_dir, data_dir: where the data is (section 4).
    pipeline_batches: timed batches per stream.
    include_reference: section 1 also times the reference convolutions.
    torch_threads: PyTorch intra-op threads.

  Returns:
    A JSON-ready dict: section 1's keys at the top level (ratio_generate,
    ratio_g_step, ratio_d_step, medians, ...), 'generation', 'stages',
    'pipeline' (the sections run), generate_peak_fraction and
    pipeline_over_consumption_min (None when their section did not run or
    was skipped) and 'sections'.
  """
  unknown = set(sections) - set(SECTIONS)
  if unknown:
    raise ValueError(f"Unknown benchmark sections {sorted(unknown)}; "
                     f"expected some of {','.join(SECTIONS)}")
  results = {"sections": list(sections), "generate_peak_fraction": None,
             "pipeline_over_consumption_min": None}
  wavegan_results = runner = None
  if "wavegan" in sections:
    wavegan_results, runner = wavegan_side_by_side(
        dim, slice_len, batch_size, repeats, include_reference, torch_threads)
    results.update(wavegan_results)
  if "generation" in sections:
    runner = runner or JaxWaveGAN(dim, slice_len, batch_size, "fast")
    results["generation"] = generation(runner, dim, slice_len, batch_size,
                                       sample_rate, repeats, matmul_size)
    results["generate_peak_fraction"] = results["generation"][
        "generate_peak_fraction"]
  if "stages" in sections:
    results["stages"] = stage_steps(stage_config, stage_repeats)
  if "pipeline" in sections:
    reason = data_available(manual_dir, data_dir)
    if reason:
      print(f"pipeline section skipped: {reason}")
      results["pipeline"] = {"streams": {}, "skipped": {"all": reason},
                             "pipeline_over_consumption_min": None}
    else:
      results["pipeline"] = pipeline(
          stage_config, wavegan_config, manual_dir, data_dir,
          pipeline_batches, results.get("stages"), wavegan_results)
    results["pipeline_over_consumption_min"] = results["pipeline"][
        "pipeline_over_consumption_min"]
  return results


def _wavegan_table(results):
  lines = [f"{'implementation':<16}" + "".join(f"{w:>12}" for w in WORKLOADS)
           + f"{'params G/D':>24}"]
  for name, per in results["medians"].items():
    counts = results["param_counts"][name]
    lines.append(f"{name:<16}" + "".join(f"{per[w]:>11.3f}s"
                                         for w in WORKLOADS)
                 + f"{counts['generator']:>13,}/{counts['discriminator']:,}")
  lines.append(f"{'torch / jax_fast':<16}" + "".join(
      f"{results['ratio_' + w]:>11.2f}x" for w in WORKLOADS))
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
  if "medians" in results:
    lines += ["== 1. WaveGAN, JAX vs PyTorch (median seconds) =="]
    lines += _wavegan_table(results)
  if "generation" in results:
    g = results["generation"]
    lines += [
        "== 2. Generation (JAX, fast convolutions) ==",
        f"clips/s {g['clips_per_s']:.1f}, real-time factor "
        f"{g['real_time_factor']:.1f}x at {g['sample_rate']} Hz "
        f"({g['seconds']:.3f} s per batch)",
        f"achieved {g['gflops']:.1f} GFLOP/s (analytic count of the dense "
        f"+ transposed convs; XLA cost analysis: "
        f"{_number(g['gflops_xla'], '.1f')} GFLOP/s)",
        f"float32 matmul peak {g['peak_gflops']:.1f} GFLOP/s "
        f"(n={g['matmul_size']}); fraction {g['generate_peak_fraction']:.2f}"]
  if "stages" in results:
    lines += ["== 3. AV-digits train steps (synthetic batches) ==",
              f"{'stage':<12}{'batch':>6}{'step':>10}{'examples/s':>12}"
              f"{'compile':>10}"]
    for name, s in results["stages"].items():
      lines.append(f"{name:<12}{s['batch_size']:>6}{s['step_seconds']:>9.3f}s"
                   f"{s['examples_per_s']:>12.1f}"
                   f"{s['compile_seconds']:>9.1f}s")
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
  lines.append(
      f"generate_peak_fraction "
      f"{_number(results['generate_peak_fraction'], '.2f')}, "
      f"pipeline_over_consumption_min "
      f"{_number(results['pipeline_over_consumption_min'], '.1f')}")
  return "\n".join(lines)
