"""Data parallelism: one device mesh with a 'data' axis over every process.

The train state is replicated on every device; each batch is split along its
leading axis over the 'data' axis. A train step is plain `jax.jit` over these
shardings (the modern replacement for `jax.pmap`):

  mesh = make_data_mesh()
  state = replicate(state, mesh)
  train_step = compile_train_step(step_fn, mesh)
  state, metrics = train_step(state, shard_batch(local_batch, mesh), rng)

Gradient averaging is implicit: `step_fn` computes the MEAN loss over the
GLOBAL batch it is given (as if on one device), and XLA's SPMD partitioner
inserts the cross-device (and cross-process) all-reduce that the mean and its
gradient need. No `pmean` is written by hand, and the result equals the
one-device step up to float summation order.

Multi-process (several hosts, or several processes on one host): call
`initialize_distributed` first, then every process builds the same mesh over
ALL devices, feeds its own part of the batch to `shard_batch`, and runs the
same program.
"""

import os
from typing import Any, Callable, Optional, Sequence

from absl import logging
import jax
import numpy as np

PyTree = Any
DATA_AXIS = 'data'

def _cluster_detected() -> bool:
  """Whether we run under a multi-process launcher JAX can auto-detect."""
  if os.environ.get('SLURM_NTASKS', '1') != '1':
    return True
  if os.environ.get('OMPI_COMM_WORLD_SIZE', '1') != '1':
    return True
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  return bool(os.environ.get('JAX_COORDINATOR_ADDRESS') or
              os.environ.get('MEGASCALE_COORDINATOR_ADDRESS') or
              ',' in hosts)


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> bool:
  """Connects this process to the others of a multi-process run.

  Explicit arguments (e.g. a coordinator at '127.0.0.1:12345' for processes
  on one machine) are passed to `jax.distributed.initialize`. Without them,
  it is called with no arguments (JAX's cluster auto-detection) only when a
  cluster environment is detected (TPU pod, SLURM with several tasks, Open
  MPI, or JAX_COORDINATOR_ADDRESS); a single process does nothing. Calling it
  again is a no-op. Must run before anything touches a device.

  Args:
    coordinator_address: 'host:port' of process 0's coordinator.
    num_processes: how many processes take part.
    process_id: this process's index in [0, num_processes).

  Returns:
    True if the process is now part of a multi-process run.
  """
  if jax.distributed.is_initialized():
    return True
  explicit = (coordinator_address, num_processes, process_id)
  if any(value is not None for value in explicit):
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id)
  elif _cluster_detected():
    jax.distributed.initialize()
  else:
    return False
  logging.info('Process %d of %d; %d local of %d devices.',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  return True


def make_data_mesh(devices: Optional[Sequence[jax.Device]] = None
                  ) -> jax.sharding.Mesh:
  """A 1-D mesh named 'data' over all devices of all processes (default)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """The sharding of an array held whole on every device of `mesh`."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def data_sharded(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """The sharding that splits an array's leading axis over 'data'."""
  return jax.sharding.NamedSharding(mesh,
                                    jax.sharding.PartitionSpec(DATA_AXIS))


def _to_global(leaf, sharding: jax.sharding.NamedSharding) -> jax.Array:
  """One process-local leaf -> a global array with `sharding`."""
  if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(
      leaf.dtype, jax.dtypes.prng_key):
    # Typed PRNG keys cannot pass through numpy: move their raw data.
    impl = jax.random.key_impl(leaf)
    data = _to_global(jax.random.key_data(leaf), sharding)
    return jax.random.wrap_key_data(data, impl=impl)
  if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
    return leaf
  return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))


def replicate(tree: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
  """Puts a pytree, identical on every process, whole on every device.

  Works with several processes (each passes its own, equal copy). Use it for
  the train state, the base rng and frozen encoder params that a train step
  closes over.

  Args:
    tree: pytree of numpy arrays, scalars or local jax arrays.
    mesh: the data mesh.

  Returns:
    The pytree of global, replicated jax.Arrays.
  """
  sharding = replicated(mesh)
  return jax.tree.map(lambda leaf: _to_global(leaf, sharding), tree)


def shard_batch(batch: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
  """Builds the global batch from each process's own part.

  Every process passes the examples it read (the same number on each); the
  global batch is their concatenation in process order, split along the
  leading axis over the 'data' axis. The global batch size must be divisible
  by the number of devices.

  Args:
    batch: pytree (e.g. dict) of this process's numpy arrays, batch-major.
    mesh: the data mesh.

  Returns:
    The pytree of global jax.Arrays, leading axis = global batch.
  """
  sharding = data_sharded(mesh)
  num_devices = mesh.devices.size

  def to_global(leaf):
    leaf = np.asarray(leaf)
    global_size = leaf.shape[0] * jax.process_count() if leaf.ndim else 0
    if not leaf.ndim or global_size % num_devices:
      raise ValueError(
          f'Cannot split a batch of {global_size} (leaf shape {leaf.shape} '
          f'on each of {jax.process_count()} processes) over '
          f'{num_devices} devices; the global batch size must be a '
          f'multiple of the device count.')
    return jax.make_array_from_process_local_data(sharding, leaf)

  return jax.tree.map(to_global, batch)


def compile_train_step(step_fn: Callable, mesh: jax.sharding.Mesh,
                       donate: bool = True) -> Callable:
  """Jits step_fn(state, batch, rng) -> (state, metrics) over the mesh.

  The compiled function takes (state, batch, base_rng): the state and the
  base rng replicated, the batch data-sharded. It hands step_fn the rng of
  this step, `fold_in(base_rng, state['step'])` (state.step_rng), so a
  resumed run sees the same randomness. The new state and the metrics come
  back replicated; the old state's buffers are donated (do not use them
  after the call).

  Args:
    step_fn: the pure step; it should return the MEAN loss over the global
      batch (see the module docstring for why that is all data parallelism
      needs).
    mesh: the data mesh.
    donate: donate the input state's buffers to the output state.

  Returns:
    The jitted step `(state, batch, base_rng) -> (state, metrics)`.
  """
  def step_with_rng(state, batch, base_rng):
    rng = jax.random.fold_in(base_rng, state['step'])
    return step_fn(state, batch, rng)

  replicated_sharding = replicated(mesh)
  return jax.jit(
      step_with_rng,
      in_shardings=(replicated_sharding, data_sharded(mesh),
                    replicated_sharding),
      out_shardings=(replicated_sharding, replicated_sharding),
      donate_argnums=(0,) if donate else ())
