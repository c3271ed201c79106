"""The generic train loop of a stage: steps, logging, checkpoints, resume.

`run_stage` drives a compiled train step (parallel.compile_train_step) from
the state's step to `num_steps`. It is the same for every stage; what a
stage trains lives in its step function.

Contracts that make a resumed run bit-identical to an uninterrupted one:
  * `make_batches(start_step)` returns the batch stream starting AT
    `start_step`: batch i of the iterator is the batch of step
    start_step + i, the same whether or not the run was interrupted (e.g.
    batches drawn from a per-step seed, or a seeded per-epoch shuffle with
    `skip`).
  * The step's rng is fold_in(base_rng, step) (done by the compiled step).
  * The state is restored exactly from the last checkpoint.

A stage may also give a `fast_step`, valid only for the batches that
`fast_step_fits` accepts (e.g. the visual CNN on a budget of distinct
frames). The choice is made per step on the host batch, before it is
sharded; with several processes every process must accept its part for the
fast step to run (one small all-gather per step), so all run one program.
The choice depends on the batch only, so a resumed run chooses as the
uninterrupted one did. `fast_step_fallbacks` in the logged metrics counts
the steps since the previous log step that ran `train_step`.

A stage may also give a `WarmUp`: its own compiled steps for the first
steps (e.g. reconstruction before a critic starts), chosen by step number,
so a resumed run chooses as the uninterrupted one did too.

Metrics: the step returns a dict of scalars (loss terms, learning rate,
grad norm, optionally a boolean `is_finite`). They stay on device until a
log step, a checkpoint step or the end; then all steps since the last fetch
are fetched together and checked for NaN/inf (every step, not only the
logged one), BEFORE anything is saved: a checkpoint never holds a state
produced by or after a non-finite step.
"""

import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

from absl import logging
from clu import metric_writers
import jax
from jax.experimental import multihost_utils
import numpy as np
import tqdm

from wavegan_jax import errors
from wavegan_jax.training import checkpointing
from wavegan_jax.training import parallel
from wavegan_jax.training import summaries

PyTree = Any
METRICS_FILE = 'metrics.jsonl'
FINITE_FLAG = 'is_finite'
FALLBACKS = 'fast_step_fallbacks'
# A stage's closing work (waiting for its last checkpoint, closing the input
# pipeline and writers) slower than this is logged: some stage ends have
# stalled for 35-50 s (freeing the tf.data iterator, run 20).
SLOW_CLOSE_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class WarmUp:
  """Compiled steps that replace train_step / fast_step before `steps`."""
  steps: int
  train_step: Callable
  fast_step: Optional[Callable] = None


@contextlib.contextmanager
def warn_if_slow(stage: str, what: str, cpu_clock=time.process_time,
                 cpu_name: str = 'process CPU'):
  """Logs a warning naming `what` if the block takes SLOW_CLOSE_SECONDS+.

  The warning also gives the CPU seconds `cpu_clock` counted over the
  block: near the wall time (or above it) the block was working, near zero
  it was waiting.
  """
  start, start_cpu = time.perf_counter(), cpu_clock()
  yield
  seconds = time.perf_counter() - start
  if seconds >= SLOW_CLOSE_SECONDS:
    logging.warning('Stage %s: %s took %.1f s (%s %.1f s)', stage, what,
                    seconds, cpu_name, cpu_clock() - start_cpu)


def release_in_background(stage: str, holder: list) -> threading.Thread:
  """Drops the references in `holder` on a thread of its own.

  For the input pipeline: freeing a tf.data iterator (its shuffle buffer
  and threads) took 35-50 s at some stage ends, for no cause found, while
  it took under a second at others and in isolation. On a thread the next
  stage starts meanwhile. The thread is not a daemon, so the interpreter
  waits for it before exiting.

  Args:
    stage: the stage name, for the warning when freeing is slow.
    holder: a list holding the only references left; it is cleared.

  Returns:
    The started thread.
  """
  def release():
    with warn_if_slow(stage, 'freeing the input pipeline (in the background)',
                      time.thread_time, 'thread CPU'):
      holder.clear()
  thread = threading.Thread(target=release, name=f'{stage}-release-pipeline')
  thread.start()
  return thread


NonFiniteError = errors.NonFiniteError


def _first_non_finite(pending: Sequence[tuple[int, dict]]
                     ) -> Optional[tuple[int, list[str]]]:
  """(step, [bad metric names]) of the first non-finite step, or None."""
  for step, metrics in pending:
    bad = sorted(name for name, value in metrics.items()
                 if name != FINITE_FLAG and
                 not np.all(np.isfinite(np.asarray(value, np.float64))))
    if FINITE_FLAG in metrics and not bool(metrics[FINITE_FLAG]):
      bad.append(FINITE_FLAG)
    if bad:
      return step, bad
  return None


def _trim_metrics_file(path: str, start_step: int) -> None:
  """Drops lines of steps after `start_step` (written before a restart).

  A line that is not a whole JSON record (a kill or a full disk cut it off
  mid-write) is dropped with a warning: the steps it logged are after the
  last checkpoint, so they are trained and logged again. The file is
  replaced atomically, so a kill while trimming loses nothing.
  """
  if not os.path.exists(path):
    return
  kept = []
  with open(path, errors='replace') as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        step = json.loads(line)['step']
      except (ValueError, KeyError, TypeError):
        logging.warning('%s: dropped line %d, not a whole metrics record '
                        '(cut off by a kill or a full disk): %.80r', path,
                        number, line.rstrip('\n'))
        continue
      if step <= start_step:
        kept.append(line if line.endswith('\n') else line + '\n')
  temporary = f'{path}.{os.getpid()}.tmp'
  with open(temporary, 'w') as f:
    f.writelines(kept)
  os.replace(temporary, path)


def _to_json_value(value) -> Any:
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


def _on_every_process(flag: bool) -> bool:
  """Whether `flag` holds on every process (one all-gather if several)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def run_stage(*,
              name: str,
              workdir: str,
              state: PyTree,
              train_step: Callable,
              batches: Callable[[int], Iterator[PyTree]],
              num_steps: int,
              base_rng: jax.Array,
              checkpointer: checkpointing.StageCheckpointer,
              log_every: int,
              checkpoint_every: int,
              examples_per_step: int,
              summary_fn: Optional[Callable[[PyTree, int], dict]] = None,
              summary_every: Optional[int] = None,
              metrics_to_show: Sequence[str] = ('loss',),
              mesh: Optional[jax.sharding.Mesh] = None,
              preemption_guard: Optional[
                  checkpointing.PreemptionGuard] = None,
              fast_step: Optional[Callable] = None,
              fast_step_fits: Optional[Callable[[PyTree], bool]] = None,
              warm_up: Optional[WarmUp] = None,
             ) -> tuple[PyTree, dict[str, Any]]:
  """Trains one stage from state['step'] to num_steps.

  Args:
    name: the stage name; metrics are written as '<name>/train/<metric>'.
    workdir: where metrics.jsonl and the TensorBoard events go.
    state: the (restored or initial) train state, replicated on the mesh.
    train_step: the compiled step (state, batch, base_rng) -> (state,
      metrics), from parallel.compile_train_step; metrics are scalars.
    batches: make_batches(start_step) -> iterator whose i-th element is the
      batch of step start_step + i (see the module docstring). Elements are
      global jax.Arrays, or, if `mesh` is given, this process's numpy part
      (passed through parallel.shard_batch).
    num_steps: the stage's total number of steps.
    base_rng: the stage's base rng (replicated; see parallel.replicate).
    checkpointer: the stage's StageCheckpointer.
    log_every: fetch, check, print and write metrics every this many steps.
    checkpoint_every: save (async) every this many steps; the final step
      is always saved and waited for.
    examples_per_step: the global batch size, for examples_per_second.
    summary_fn: optional (state, step) -> {'audio': {name: [N, T, C]},
      'images': {name: [N, H, W, C]}, 'sample_rate': int}, called at log
      steps on every process (it may run a sharded computation); process 0
      writes the samples to TensorBoard.
    metrics_to_show: metrics shown in the progress bar.
    mesh: if given, host batches are sharded onto it.
    preemption_guard: an entered PreemptionGuard; on its signal the loop
      saves the current step, waits, and raises checkpointing.Preempted.
    fast_step: optional compiled step like `train_step`, run instead of it
      on the batches `fast_step_fits` accepts (see the module docstring).
    fast_step_fits: this process's host batch -> bool; required with
      `fast_step`.
    warm_up: optional steps run instead of train_step / fast_step while
      the step is below warm_up.steps (see the module docstring).

  Returns:
    (final state, metrics of the last step as host Python scalars; {} if
    the state was already at num_steps).

  Raises:
    NonFiniteError: a step gave NaN/inf in a metric (message: the step and
      the metric names); the newest checkpoint is from before that step.
    checkpointing.Preempted: after a signal-triggered checkpoint.
  """
  if (fast_step is None) != (fast_step_fits is None):
    raise ValueError(f'Stage {name}: fast_step and fast_step_fits go '
                     'together.')
  start_step = int(jax.device_get(state['step']))
  is_chief = jax.process_index() == 0
  metrics_path = os.path.join(workdir, METRICS_FILE)
  if is_chief:
    os.makedirs(workdir, exist_ok=True)
    _trim_metrics_file(metrics_path, start_step)
  writer = metric_writers.create_default_writer(
      workdir, just_logging=not is_chief)
  progress = tqdm.tqdm(total=num_steps, initial=start_step, desc=name,
                       disable=not is_chief, dynamic_ncols=True)
  # Multi-process: the signal flag is agreed on at sync points only, so that
  # every process saves at the same step.
  sync_preemption = jax.process_count() > 1

  pending = []          # (step, device metrics) not yet fetched.
  fallbacks = 0         # Steps since the last log that ran train_step.
  fallback_warned = False
  last_metrics = {}
  last_log_time, last_log_step = time.perf_counter(), start_step

  def fetch_and_check():
    """Fetches every pending step's metrics; raises on a non-finite one."""
    nonlocal pending, last_metrics
    fetched = jax.device_get(pending)
    pending = []
    bad = _first_non_finite(fetched)
    if bad is not None:
      bad_step, names = bad
      values = {n: _to_json_value(v)
                for n, v in dict(fetched)[bad_step].items() if n in names}
      checkpointer.wait()  # So that latest_step counts in-flight saves.
      raise NonFiniteError(
          f'Stage {name}: non-finite {", ".join(names)} at step {bad_step} '
          f'({values}); nothing from this step on was saved, the last '
          f'checkpoint is step {checkpointer.latest_step()}.')
    if fetched:
      last_metrics = {k: _to_json_value(v) for k, v in fetched[-1][1].items()
                      if k != FINITE_FLAG}

  def log(step):
    nonlocal last_log_time, last_log_step, fallbacks
    now = time.perf_counter()
    steps_per_second = (step - last_log_step) / max(now - last_log_time, 1e-9)
    last_log_time, last_log_step = now, step
    if fast_step is not None:
      last_metrics[FALLBACKS] = fallbacks
      fallbacks = 0
    record = {'step': step, **last_metrics,
              'steps_per_second': steps_per_second,
              'examples_per_second': steps_per_second * examples_per_step}
    writer.write_scalars(step, {f'{name}/train/{k}': v
                                for k, v in record.items() if k != 'step'
                                and np.ndim(v) == 0})
    writer.flush()
    if is_chief:
      with open(metrics_path, 'a') as f:
        f.write(json.dumps(record) + '\n')
      progress.set_postfix({k: f'{last_metrics[k]:.4g}'
                            for k in metrics_to_show if k in last_metrics})

  def stop_requested(at_sync_point):
    if preemption_guard is None:
      return False
    if not sync_preemption:
      return preemption_guard.requested
    if not at_sync_point:
      return False
    flags = multihost_utils.process_allgather(
        np.asarray(preemption_guard.requested))
    return bool(np.any(flags))

  if summary_every is None:
    summary_every = log_every
  if summary_every < 1:
    raise ValueError(f'Stage {name}: summary_every must be >= 1, got '
                     f'{summary_every}')

  step = start_step
  batch_iterator = None
  try:
    batch_iterator = iter(batches(start_step))
    while step < num_steps:
      batch = next(batch_iterator, None)
      if batch is None:
        raise ValueError(f'Stage {name}: the batch iterator ended at step '
                         f'{step}, before num_steps={num_steps}.')
      in_warm_up = warm_up is not None and step < warm_up.steps
      step_fn = warm_up.train_step if in_warm_up else train_step
      if fast_step is not None:
        if _on_every_process(fast_step_fits(batch)):
          step_fn = warm_up.fast_step if in_warm_up else fast_step
        else:
          if not fallback_warned:
            fallback_warned = True
            logging.warning(
                'Stage %s: the batch of step %d does not fit the fast step; '
                'running (and compiling, once) the full one. Such steps are '
                'counted in %s.', name, step, FALLBACKS)
          fallbacks += 1
      if mesh is not None:
        batch = parallel.shard_batch(batch, mesh)
      state, metrics = step_fn(state, batch, base_rng)
      step += 1
      pending.append((step - 1, metrics))
      progress.update(1)

      is_log_step = step % log_every == 0
      is_checkpoint_step = step % checkpoint_every == 0
      is_last = step == num_steps
      preempted = stop_requested(is_log_step or is_checkpoint_step)
      if is_log_step or is_checkpoint_step or is_last or preempted:
        fetch_and_check()
      if is_log_step or is_last:
        log(step)
      if summary_fn is not None and (step % summary_every == 0 or is_last):
        # On every process: it may run collectives.
        summaries.write_summaries(writer, name, step, summary_fn(state, step))
        writer.flush()
      if is_checkpoint_step or is_last or preempted:
        checkpointer.save(step, state, force=is_last or preempted)
      if preempted:
        checkpointer.wait()
        preempted_error = checkpointing.Preempted(
            step, preemption_guard.signal_number or signal.SIGTERM)
        logging.warning('Stage %s: %s', name, preempted_error)
        raise preempted_error
  finally:
    with warn_if_slow(name, 'waiting for the last checkpoint'):
      checkpointer.wait()
    progress.close()
    with warn_if_slow(name, 'closing the input pipeline'):
      if hasattr(batch_iterator, 'close'):  # A generator.
        batch_iterator.close()
    # tf.data's numpy iterator has no close(); its last reference is dropped
    # on another thread (see release_in_background).
    holder = [batch_iterator]
    del batch_iterator
    release_in_background(name, holder)
    with warn_if_slow(name, 'closing the metric writer'):
      writer.close()
  return state, last_metrics

