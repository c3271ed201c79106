"""Runs the toy train step on an 8-device mesh and on one device.

Launched by tests/parallel_test.py with
XLA_FLAGS=--xla_force_host_platform_device_count=8; prints one JSON object:
the losses and params of both runs' relative difference, how the batch was
laid out, and the error a batch not divisible by 8 gives.
"""

import json

import jax
import numpy as np

from wavegan_jax.training import parallel

import toy_model

NUM_STEPS, BATCH_SIZE = 3, 16


def max_relative_difference(tree_a: dict, tree_b: dict) -> float:
  return max(float(np.max(np.abs(tree_a[k] - tree_b[k]) /
                          (np.abs(tree_b[k]) + 1e-6)))
             for k in tree_a)


def main():
  mesh8 = parallel.make_data_mesh()
  mesh1 = parallel.make_data_mesh(jax.devices()[:1])
  params8, metrics8 = toy_model.reference_run(NUM_STEPS, BATCH_SIZE, mesh8)
  params1, metrics1 = toy_model.reference_run(NUM_STEPS, BATCH_SIZE, mesh1)
  batch = parallel.shard_batch(toy_model.global_batch(0, BATCH_SIZE), mesh8)
  shards = batch['inputs'].addressable_shards
  try:
    parallel.shard_batch(toy_model.global_batch(0, 12), mesh8)
    shard_error = ''
  except ValueError as error:
    shard_error = str(error)
  print(json.dumps({
      'device_count': jax.device_count(),
      'mesh_shape': dict(mesh8.shape),
      'loss_8': float(metrics8['loss']),
      'loss_1': float(metrics1['loss']),
      'max_rel_param_diff': max_relative_difference(params8, params1),
      'params_differ_from_init': max_relative_difference(
          params8, toy_model.flat_params(toy_model.init_state())),
      'batch_shard_shapes': sorted({shard.data.shape for shard in shards}),
      'batch_num_shards': len(shards),
      'shard_error': shard_error,
  }))


if __name__ == '__main__':
  main()
