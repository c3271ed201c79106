"""Tests for wavegan_jax.training.parallel: meshes, sharding, equivalence.

Several simulated devices and several processes need fresh processes: those
tests launch tests/parallel_equivalence_main.py and tests/toy_train_main.py.
"""

import json
import os
import socket

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.training import parallel

import toy_model


def test_mesh_and_shardings_on_this_process():
  mesh = parallel.make_data_mesh()
  assert mesh.axis_names == ('data',)
  assert mesh.devices.size == jax.device_count()
  assert parallel.replicated(mesh).spec == jax.sharding.PartitionSpec()
  assert parallel.data_sharded(mesh).spec == jax.sharding.PartitionSpec(
      'data')
  tree = parallel.replicate({'w': np.arange(3.0), 'rng': jax.random.key(1),
                             'step': 4}, mesh)
  assert tree['w'].sharding == parallel.replicated(mesh)
  np.testing.assert_array_equal(tree['w'], [0.0, 1.0, 2.0])
  np.testing.assert_array_equal(jax.random.key_data(tree['rng']),
                                jax.random.key_data(jax.random.key(1)))
  assert int(tree['step']) == 4
  batch = parallel.shard_batch({'x': np.ones((4, 2), np.float32)}, mesh)
  assert batch['x'].shape == (4, 2)
  assert batch['x'].sharding == parallel.data_sharded(mesh)
  with pytest.raises(ValueError, match=r'Cannot split a batch of 0 \(leaf '
                     r'shape \(\) on each of 1 processes\)'):
    parallel.shard_batch({'x': np.float32(1.0)}, mesh)


def test_compiled_step_folds_the_step_into_the_rng():
  mesh = parallel.make_data_mesh()

  def step_fn(state, batch, rng):
    del batch
    return {**state, 'step': state['step'] + 1}, {'rng': rng}

  step = parallel.compile_train_step(step_fn, mesh)
  base_rng = parallel.replicate(jax.random.PRNGKey(0), mesh)
  state = parallel.replicate({'step': jnp.array(5, jnp.int32)}, mesh)
  state, metrics = step(state, parallel.shard_batch(
      {'x': np.zeros((1,))}, mesh), base_rng)
  assert int(state['step']) == 6
  np.testing.assert_array_equal(metrics['rng'], jax.random.fold_in(
      jax.random.PRNGKey(0), 5))


def test_initialize_distributed_is_a_no_op_on_one_process(monkeypatch):
  for name in ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE', 'TPU_WORKER_HOSTNAMES',
               'JAX_COORDINATOR_ADDRESS', 'MEGASCALE_COORDINATOR_ADDRESS'):
    monkeypatch.delenv(name, raising=False)
  assert not parallel.initialize_distributed()
  assert jax.process_count() == 1


TWO_PROCESS_STEPS = 20


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


@pytest.fixture(scope='module')
def subprocess_runs(tmp_path_factory):
  """Starts the slow subprocesses together, so their start-ups overlap."""
  workdir = str(tmp_path_factory.mktemp('two_processes'))
  coordinator = f'127.0.0.1:{_free_port()}'
  eight_devices_log = str(tmp_path_factory.mktemp('eight') / 'output.log')
  runs = {
      'eight_devices': (toy_model.start_script(
          'parallel_equivalence_main.py', log_path=eight_devices_log,
          extra_env={'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}),
                        eight_devices_log),
      'two_process_workdir': workdir,
      'two_processes': [(toy_model.start_script(
          'toy_train_main.py', f'--workdir={workdir}',
          f'--num_steps={TWO_PROCESS_STEPS}', f'--coordinator={coordinator}',
          '--num_processes=2', f'--process_id={process_id}',
          '--fast_step_if_positive', log_path=f'{workdir}/output{process_id}.log'),
                         f'{workdir}/output{process_id}.log')
                        for process_id in range(2)],
  }
  yield runs
  for process, _ in [runs['eight_devices'], *runs['two_processes']]:
    if process.poll() is None:
      process.kill()
      process.wait()


@pytest.mark.slow
def test_eight_simulated_devices_match_one_device(subprocess_runs):
  process, log_path = subprocess_runs['eight_devices']
  output = toy_model.finish(process, log_path, timeout=180)
  assert process.returncode == 0, output
  result = json.loads(output.strip().splitlines()[-1])
  assert result['device_count'] == 8
  assert result['mesh_shape'] == {'data': 8}
  assert result['batch_num_shards'] == 8
  assert result['batch_shard_shapes'] == [[2, 4]]
  assert result['loss_8'] == pytest.approx(result['loss_1'], rel=1e-5)
  assert result['max_rel_param_diff'] < 1e-5
  assert result['params_differ_from_init'] > 1e-3  # The steps did something.
  assert result['shard_error'] == (
      'Cannot split a batch of 12 (leaf shape (12, 4) on each of 1 processes)'
      ' over 8 devices; the global batch size must be a multiple of the '
      'device count.')


@pytest.mark.slow
def test_two_processes_train_like_one(subprocess_runs):
  workdir = subprocess_runs['two_process_workdir']
  for process, log_path in subprocess_runs['two_processes']:
    output = toy_model.finish(process, log_path, timeout=180)
    assert process.returncode == 0, output
  final = np.load(os.path.join(workdir, 'final.npz'))
  # Each process held half of every batch; the checkpoints are the global
  # state, written together.
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      '10', '20']
  reference_params, reference_metrics = toy_model.reference_run(
      TWO_PROCESS_STEPS)
  for key, value in reference_params.items():
    np.testing.assert_allclose(final[key], value, rtol=1e-5, atol=1e-6,
                               err_msg=key)
  metrics = json.loads(str(final['metrics']))
  assert metrics['loss'] == pytest.approx(float(reference_metrics['loss']),
                                          rel=1e-5)
  # The fast step ran only where BOTH processes' halves fit it: process 0
  # counted the steps where either half did not.
  halves = [[toy_model.first_input_positive(
      {'inputs': toy_model.global_batch(step, 16)['inputs'][8 * p:]})
             for p in range(2)] for step in range(TWO_PROCESS_STEPS)]
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    logged = [json.loads(line) for line in f]
  # Logged every 5 steps, each count the steps since the previous log.
  expected = [sum(not all(fits) for fits in halves[start:start + 5])
              for start in range(0, TWO_PROCESS_STEPS, 5)]
  process_0_alone = [sum(not fits[0] for fits in halves[start:start + 5])
                     for start in range(0, TWO_PROCESS_STEPS, 5)]
  assert process_0_alone != expected
  assert [record['fast_step_fallbacks'] for record in logged] == expected
