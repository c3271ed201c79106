"""A toy model for the training tests: a tiny MLP regression.

The parts a stage provides: params and train-state init, a pure train step
and a deterministic, resumable per-step data stream (`make_batches`). It
imports no TensorFlow, so subprocesses that only need a step start fast.
"""

import os
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from wavegan_jax.training import checkpointing
from wavegan_jax.training import parallel
from wavegan_jax.training import state as state_lib

INPUT_DIM, HIDDEN_DIM = 4, 16
LEARNING_RATE = 1e-2


def init_params(rng: jax.Array) -> dict:
  """The MLP's params: {'mlp': {'dense1': ..., 'dense2': ...}}."""
  rng1, rng2 = jax.random.split(rng)
  return {'mlp': {
      'dense1': {'kernel': jax.random.normal(rng1, (INPUT_DIM, HIDDEN_DIM))
                           / np.sqrt(INPUT_DIM),
                 'bias': jnp.zeros((HIDDEN_DIM,))},
      'dense2': {'kernel': jax.random.normal(rng2, (HIDDEN_DIM, 1))
                           / np.sqrt(HIDDEN_DIM),
                 'bias': jnp.zeros((1,))}}}


OPTIMIZER = state_lib.make_optimizer(LEARNING_RATE, grad_clip_norm=10.0)


def init_state() -> dict:
  return state_lib.create_train_state(
      init_params(jax.random.PRNGKey(0)), {'mlp': OPTIMIZER},
      ema_decay=0.9)


def apply_mlp(params: dict, inputs: jax.Array) -> jax.Array:
  hidden = jnp.tanh(inputs @ params['dense1']['kernel']
                    + params['dense1']['bias'])
  return hidden @ params['dense2']['kernel'] + params['dense2']['bias']


def train_step_fn(state: dict, batch: dict, rng: jax.Array):
  """One step: MSE of the MLP on inputs with a little rng noise."""
  def loss_fn(params):
    noise = 0.01 * jax.random.normal(rng, batch['inputs'].shape)
    predictions = apply_mlp(params, batch['inputs'] + noise)
    return jnp.mean((predictions - batch['targets']) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state['params']['mlp'])
  grad_norm = state_lib.global_norm(grads)
  state = state_lib.apply_gradients(state, 'mlp', grads, OPTIMIZER,
                                    ema_decay=0.9)
  state = state_lib.increment_step(state)
  metrics = {
      'loss': loss, 'grad_norm': grad_norm,
      'learning_rate': state_lib.learning_rate_of(state['opt_state']['mlp']),
      'is_finite': jnp.isfinite(loss) & jnp.isfinite(grad_norm)}
  return state, metrics


def global_batch(step: int, batch_size: int, nan_at_step=None) -> dict:
  """The deterministic global batch of `step` (NaN inputs at nan_at_step)."""
  rng = np.random.default_rng([1234, step])
  inputs = rng.uniform(-1, 1, (batch_size, INPUT_DIM)).astype(np.float32)
  targets = np.sin(2 * inputs).sum(axis=1, keepdims=True)
  if step == nan_at_step:
    inputs[0, 0] = np.nan
  return {'inputs': inputs, 'targets': targets.astype(np.float32)}


def make_batches(start_step: int, batch_size: int, nan_at_step=None,
                 step_sleep: float = 0.0):
  """Yields this process's part of the global batch of each step."""
  share = batch_size // jax.process_count()
  first = jax.process_index() * share
  step = start_step
  while True:
    if step_sleep:
      time.sleep(step_sleep)
    batch = global_batch(step, batch_size, nan_at_step)
    yield {k: v[first:first + share] for k, v in batch.items()}
    step += 1


def first_input_positive(batch: dict) -> bool:
  """A per-process batch test for the loop's fast step."""
  return bool(batch['inputs'][0, 0] > 0)


def flat_params(state: dict) -> dict:
  """{'params/mlp/dense1/kernel': np.ndarray, ...} of params and EMA."""
  flat = checkpointing.flatten_by_path(
      {'params': state['params'], 'ema_params': state['ema_params']})
  return {k: np.asarray(jax.device_get(v)) for k, v in flat.items()}


BASE_RNG_SEED = 7


def reference_run(num_steps: int, batch_size: int = 16,
                  mesh=None) -> tuple[dict, dict]:
  """Trains without the loop: the plain sequence of compiled steps.

  Args:
    num_steps: steps from scratch.
    batch_size: the global batch size.
    mesh: the mesh to run on (default: the first device alone).

  Returns:
    (flat params and EMA params, the last step's metrics), on the host.
  """
  mesh = mesh or parallel.make_data_mesh(jax.devices()[:1])
  state = parallel.replicate(init_state(), mesh)
  base_rng = parallel.replicate(jax.random.PRNGKey(BASE_RNG_SEED), mesh)
  step_fn = parallel.compile_train_step(train_step_fn, mesh)
  metrics = {}
  for step in range(num_steps):
    batch = jax.device_put(global_batch(step, batch_size),
                           parallel.data_sharded(mesh))
    state, metrics = step_fn(state, batch, base_rng)
  return flat_params(state), jax.device_get(metrics)


TESTS_DIR = pathlib.Path(__file__).resolve().parent


def start_script(script: str, *args: str, log_path: str,
                 extra_env=None) -> subprocess.Popen:
  """Starts tests/<script> with the repo importable, output to log_path.

  A file, not a pipe: a long run's progress bar would fill a pipe nobody
  reads yet and block the process.
  """
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      [str(TESTS_DIR.parent), str(TESTS_DIR), env.get('PYTHONPATH', '')])
  env.update(extra_env or {})
  with open(log_path, 'w') as log_file:
    return subprocess.Popen(
        [sys.executable, str(TESTS_DIR / script), *args], env=env,
        stdout=log_file, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, log_path: str, timeout: float) -> str:
  """Waits for `process` and returns its output."""
  process.wait(timeout=timeout)
  with open(log_path) as f:
    return f.read()
