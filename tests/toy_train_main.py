"""Trains the toy stage (tests/toy_model.py) with the training package.

The training tests launch it as a subprocess for what needs a fresh process:
several processes, SIGKILL and SIGTERM. From the repository root:

  PYTHONPATH=. python tests/toy_train_main.py --workdir=/tmp/toy --num_steps=40

It resumes from <workdir>/checkpoints if there is one, trains to
--num_steps and, on process 0, writes the final params, EMA params and last
metrics to <workdir>/final.npz.
"""

import argparse
import json
import os
import sys

import jax
import numpy as np

from wavegan_jax.training import checkpointing
from wavegan_jax.training import loop
from wavegan_jax.training import parallel

import toy_model


def train(workdir: str, num_steps: int, log_every: int = 5,
          checkpoint_every: int = 10, batch_size: int = 16,
          nan_at_step=None, step_sleep: float = 0.0, async_save: bool = True,
          guard=None, summary_fn=None, summary_every=None,
          fast_step_fn=None, fast_step_fits=None, warm_up_steps=0,
          warm_up_step_fn=None, warm_up_fast_step_fn=None):
  """Resumes or starts the toy stage in `workdir` and trains it."""
  mesh = parallel.make_data_mesh()
  checkpointer = checkpointing.StageCheckpointer(
      os.path.join(workdir, 'checkpoints'), max_to_keep=2,
      async_save=async_save)
  state, _ = checkpointer.restore_or_init(toy_model.init_state, mesh=mesh)
  try:
    return loop.run_stage(
        name='toy', workdir=workdir, state=state,
        train_step=parallel.compile_train_step(toy_model.train_step_fn, mesh),
        batches=lambda start: toy_model.make_batches(
            start, batch_size, nan_at_step, step_sleep),
        num_steps=num_steps,
        base_rng=parallel.replicate(
            jax.random.PRNGKey(toy_model.BASE_RNG_SEED), mesh),
        checkpointer=checkpointer, log_every=log_every,
        checkpoint_every=checkpoint_every, examples_per_step=batch_size,
        metrics_to_show=('loss', 'grad_norm'), mesh=mesh,
        preemption_guard=guard, summary_fn=summary_fn,
        summary_every=summary_every,
        fast_step=(fast_step_fn and
                   parallel.compile_train_step(fast_step_fn, mesh)),
        fast_step_fits=fast_step_fits,
        warm_up=warm_up_steps and loop.WarmUp(
            steps=warm_up_steps,
            train_step=parallel.compile_train_step(warm_up_step_fn, mesh),
            fast_step=(warm_up_fast_step_fn and parallel.compile_train_step(
                warm_up_fast_step_fn, mesh))) or None)
  finally:
    checkpointer.close()


def main(argv):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--num_steps', type=int, default=40)
  parser.add_argument('--log_every', type=int, default=5)
  parser.add_argument('--checkpoint_every', type=int, default=10)
  parser.add_argument('--batch_size', type=int, default=16)
  parser.add_argument('--nan_at_step', type=int, default=None)
  parser.add_argument('--step_sleep', type=float, default=0.0)
  parser.add_argument(
      '--fast_step_if_positive', action='store_true',
      help='give the loop a (numerically equal) fast step for the batches '
      'whose local part starts with a positive input')
  parser.add_argument('--coordinator', default=None)
  parser.add_argument('--num_processes', type=int, default=None)
  parser.add_argument('--process_id', type=int, default=None)
  args = parser.parse_args(argv)
  parallel.initialize_distributed(args.coordinator, args.num_processes,
                                  args.process_id)
  with checkpointing.PreemptionGuard() as guard:
    state, metrics = train(
        args.workdir, args.num_steps, args.log_every, args.checkpoint_every,
        args.batch_size, args.nan_at_step, args.step_sleep, guard=guard,
        **(dict(fast_step_fn=toy_model.train_step_fn,
                fast_step_fits=toy_model.first_input_positive)
           if args.fast_step_if_positive else {}))
  if jax.process_index() == 0:
    np.savez(os.path.join(args.workdir, 'final.npz'),
             metrics=json.dumps(metrics), **toy_model.flat_params(state))


if __name__ == '__main__':
  main(sys.argv[1:])
