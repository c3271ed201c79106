"""Tests for wavegan_jax.training.loop: training, logging, resume, NaN stop.

The toy stage (tests/toy_model.py, tests/toy_train_main.py) is a tiny MLP
regression on deterministic per-step batches.
"""

import glob
import json
import os
import re
import signal
import threading
import time

import jax
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import assert_trees_equal
from wavegan_jax.training import checkpointing
from wavegan_jax.training import loop
from wavegan_jax.training import parallel

import toy_model
import toy_train_main

NUM_STEPS = 40


def _signal_after_first_checkpoint(process, workdir, signum, delay,
                                   timeout=150):
  """Sends `signum` `delay` s after the first checkpoint is complete."""
  checkpoints = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + timeout
  while process.poll() is None and time.time() < deadline:
    if os.path.isdir(checkpoints) and any(
        name.isdigit() for name in os.listdir(checkpoints)):
      time.sleep(delay)
      process.send_signal(signum)
      return
    time.sleep(0.02)


@pytest.fixture(scope='module')
def killed_runs(tmp_path_factory):
  """Runs to SIGKILL and SIGTERM, started first so that start-ups overlap.

  Both sleep 0.1 s per step; a watcher thread signals each one soon after
  its first checkpoint (step 10). Returns {name: (workdir, process, log)}.
  """
  runs, watchers = {}, []
  for name, signum, delay in (('sigkill', signal.SIGKILL, 0.0),
                              ('sigterm', signal.SIGTERM, 0.35)):
    workdir = str(tmp_path_factory.mktemp(name))
    log_path = os.path.join(workdir, 'output.log')
    process = toy_model.start_script(
        'toy_train_main.py', f'--workdir={workdir}', '--num_steps=1000',
        '--step_sleep=0.1', log_path=log_path)
    runs[name] = (workdir, process, log_path)
    watchers.append(threading.Thread(
        target=_signal_after_first_checkpoint,
        args=(process, workdir, signum, delay), daemon=True))
    watchers[-1].start()
  yield runs
  for _, process, _ in runs.values():
    if process.poll() is None:
      process.kill()
      process.wait()


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, killed_runs):
  """An uninterrupted 40-step run: (workdir, final state, last metrics)."""
  del killed_runs  # Only started first.
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  state, metrics = toy_train_main.train(workdir, NUM_STEPS,
                                        summary_fn=_summary_fn)
  return workdir, state, metrics


def _summary_fn(state, step):
  """A sine as 'audio' and the first kernel as an 'image'."""
  kernel = np.asarray(state['params']['mlp']['dense1']['kernel'])
  return {'audio': {'sine': np.sin(np.arange(800) * 0.1 * step).reshape(
              1, 800, 1).astype(np.float32)},
          'images': {'kernel': kernel[None, :, :, None]},
          'sample_rate': 8000}


def test_loss_falls_and_metrics_are_logged(uninterrupted):
  workdir, state, metrics = uninterrupted
  assert int(state['step']) == NUM_STEPS
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  assert [r['step'] for r in records] == [5, 10, 15, 20, 25, 30, 35, 40]
  assert all(sorted(r) == ['examples_per_second', 'grad_norm',
                           'learning_rate', 'loss', 'step',
                           'steps_per_second'] for r in records)
  assert records[-1]['loss'] < records[0]['loss'] / 4
  assert records[-1]['learning_rate'] == pytest.approx(1e-2)
  assert records[-1]['examples_per_second'] == pytest.approx(
      16 * records[-1]['steps_per_second'])
  assert metrics == {k: records[-1][k]
                     for k in ('grad_norm', 'learning_rate', 'loss')}
  # TensorBoard got the namespaced scalars of every log step.
  events = glob.glob(os.path.join(workdir, 'events.out.tfevents.*'))
  assert len(events) == 1
  loss_steps = [event.step for event in
                tf.compat.v1.train.summary_iterator(events[0])
                for value in event.summary.value
                if value.tag == 'toy/train/loss']
  assert loss_steps == [5, 10, 15, 20, 25, 30, 35, 40]
  sample_tags = {value.tag for event in
                 tf.compat.v1.train.summary_iterator(events[0])
                 for value in event.summary.value
                 if value.tag.startswith('toy/samples/')}
  assert sample_tags == {'toy/samples/sine', 'toy/samples/kernel'}
  # The final step was saved (checkpoints every 10, two kept).
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      '30', '40']


def test_summaries_every_summary_every_steps_and_at_the_end(tmp_path):
  summary_steps = []

  def summary_fn(state, step):
    summary_steps.append(step)
    return _summary_fn(state, step)

  toy_train_main.train(str(tmp_path), 32, summary_fn=summary_fn,
                       summary_every=15)
  assert summary_steps == [15, 30, 32]
  events = glob.glob(os.path.join(str(tmp_path), 'events.out.tfevents.*'))
  sine_steps = [event.step for event in
                tf.compat.v1.train.summary_iterator(events[0])
                for value in event.summary.value
                if value.tag == 'toy/samples/sine']
  assert sine_steps == [15, 30, 32]
  with pytest.raises(ValueError, match='summary_every must be >= 1, got 0'):
    toy_train_main.train(str(tmp_path / 'zero'), 4, summary_fn=summary_fn,
                         summary_every=0)


def test_resume_after_sigkill_is_bit_identical(uninterrupted, killed_runs):
  _, reference_state, reference_metrics = uninterrupted
  workdir, process, log_path = killed_runs['sigkill']
  output = toy_model.finish(process, log_path, timeout=150)
  assert process.returncode == -signal.SIGKILL, output
  killed_at = checkpointing.StageCheckpointer(
      os.path.join(workdir, 'checkpoints')).latest_step()
  assert 10 <= killed_at < NUM_STEPS

  state, metrics = toy_train_main.train(workdir, NUM_STEPS)
  assert metrics == reference_metrics
  reference = toy_model.flat_params(reference_state)
  resumed = toy_model.flat_params(state)
  assert resumed.keys() == reference.keys()
  for key in reference:
    np.testing.assert_array_equal(resumed[key], reference[key], err_msg=key)
  # Lines logged after the checkpoint by the killed run were dropped.
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    steps = [json.loads(line)['step'] for line in f]
  assert steps == [5, 10, 15, 20, 25, 30, 35, 40]


def test_sigterm_saves_a_restorable_checkpoint_and_exits_cleanly(
    killed_runs):
  workdir, process, log_path = killed_runs['sigterm']
  output = toy_model.finish(process, log_path, timeout=150)
  assert process.returncode == 128 + signal.SIGTERM, output
  checkpointer = checkpointing.StageCheckpointer(
      os.path.join(workdir, 'checkpoints'))
  step = checkpointer.latest_step()
  assert 10 < step < 1000
  assert f'Stopped by signal 15 after saving step {step}; exit code 143.' in (
      output)
  abstract = jax.eval_shape(toy_model.init_state)
  restored = checkpointer.restore(step, abstract)
  assert int(restored['step']) == step
  assert np.all(np.isfinite(restored['params']['mlp']['dense1']['kernel']))
  checkpointer.close()


def test_nan_stops_the_stage_and_is_never_checkpointed(tmp_path):
  workdir = str(tmp_path)
  with pytest.raises(loop.NonFiniteError,
                     match=r'Stage toy: non-finite grad_norm, loss, is_finite '
                     r'at step 14 \(.*nan.*\); nothing from this step on was '
                     r'saved, the last checkpoint is step 10\.'):
    toy_train_main.train(workdir, 30, log_every=5, checkpoint_every=5,
                         nan_at_step=14)
  checkpointer = checkpointing.StageCheckpointer(
      os.path.join(workdir, 'checkpoints'))
  assert checkpointer.manager.all_steps() == [5, 10]
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    assert [json.loads(line)['step'] for line in f] == [5, 10]
  checkpointer.close()


def _zero_target_step(state, batch, rng):
  """A fast step that differs from the full one, to see which one ran."""
  return toy_model.train_step_fn(
      state, {**batch, 'targets': 0 * batch['targets']}, rng)


def test_fast_step_runs_exactly_on_the_batches_it_fits(tmp_path):
  num_steps, log_every = 12, 4
  state, metrics = toy_train_main.train(
      str(tmp_path), num_steps, log_every=log_every, checkpoint_every=100,
      fast_step_fn=_zero_target_step,
      fast_step_fits=toy_model.first_input_positive)
  fits = [toy_model.first_input_positive(toy_model.global_batch(step, 16))
          for step in range(num_steps)]
  assert 0 < sum(fits) < num_steps  # Both steps ran.
  # The same choice made by hand, one compiled step at a time.
  mesh = parallel.make_data_mesh(jax.devices()[:1])
  expected = parallel.replicate(toy_model.init_state(), mesh)
  base_rng = parallel.replicate(
      jax.random.PRNGKey(toy_model.BASE_RNG_SEED), mesh)
  steps = {True: parallel.compile_train_step(_zero_target_step, mesh),
           False: parallel.compile_train_step(toy_model.train_step_fn, mesh)}
  for step in range(num_steps):
    batch = jax.device_put(toy_model.global_batch(step, 16),
                           parallel.data_sharded(mesh))
    expected, _ = steps[fits[step]](expected, batch, base_rng)
  assert_trees_equal(toy_model.flat_params(state),
                     toy_model.flat_params(expected))
  with open(os.path.join(tmp_path, 'metrics.jsonl')) as f:
    logged = [json.loads(line) for line in f]
  # Per log window: the steps since the previous log that ran the full step.
  windows = [fits[start:start + log_every]
             for start in range(0, num_steps, log_every)]
  assert [record['fast_step_fallbacks'] for record in logged] == [
      window.count(False) for window in windows]
  assert metrics['fast_step_fallbacks'] == windows[-1].count(False)


def _half_target_step(state, batch, rng):
  """A warm-up step that differs from the others, to see which one ran."""
  return toy_model.train_step_fn(
      state, {**batch, 'targets': 0.5 * batch['targets']}, rng)


def _half_zero_target_step(state, batch, rng):
  return _half_target_step(state, {**batch, 'targets': 0 * batch['targets']},
                           rng)


@pytest.mark.parametrize('with_fast_step', [False, True])
def test_warm_up_steps_run_before_their_end_and_resume_alike(
    tmp_path, with_fast_step):
  num_steps, warm_up_steps = 12, 5
  fast = (dict(fast_step_fn=_zero_target_step,
               fast_step_fits=toy_model.first_input_positive,
               warm_up_fast_step_fn=_half_zero_target_step)
          if with_fast_step else {})
  kwargs = dict(log_every=4, checkpoint_every=3, warm_up_steps=warm_up_steps,
                warm_up_step_fn=_half_target_step, **fast)
  state, _ = toy_train_main.train(str(tmp_path / 'whole'), num_steps,
                                  **kwargs)
  # The same choice made by hand: warm-up steps by step number, then the
  # fast / full choice by batch as before.
  mesh = parallel.make_data_mesh(jax.devices()[:1])
  expected = parallel.replicate(toy_model.init_state(), mesh)
  base_rng = parallel.replicate(
      jax.random.PRNGKey(toy_model.BASE_RNG_SEED), mesh)
  compiled = {fn: parallel.compile_train_step(fn, mesh) for fn in (
      toy_model.train_step_fn, _zero_target_step, _half_target_step,
      _half_zero_target_step)}
  for step in range(num_steps):
    batch = toy_model.global_batch(step, 16)
    fits = with_fast_step and toy_model.first_input_positive(batch)
    fn = ({(True, True): _half_zero_target_step,
           (True, False): _half_target_step,
           (False, True): _zero_target_step,
           (False, False): toy_model.train_step_fn}
          [(step < warm_up_steps, bool(fits))])
    expected, _ = compiled[fn](
        expected, jax.device_put(batch, parallel.data_sharded(mesh)),
        base_rng)
  assert_trees_equal(toy_model.flat_params(state),
                     toy_model.flat_params(expected))
  # Stopped inside the warm-up (step 3) and resumed past its end.
  resumed_dir = str(tmp_path / 'resumed')
  toy_train_main.train(resumed_dir, 3, **kwargs)
  resumed, _ = toy_train_main.train(resumed_dir, num_steps, **kwargs)
  assert_trees_equal(toy_model.flat_params(resumed),
                     toy_model.flat_params(state))


def test_fast_step_needs_its_test():
  with pytest.raises(ValueError, match='fast_step and fast_step_fits go '
                     'together'):
    loop.run_stage(name='toy', workdir='unused', state={}, train_step=None,
                   batches=None, num_steps=1, base_rng=None,
                   checkpointer=None, log_every=1, checkpoint_every=1,
                   examples_per_step=1, fast_step=lambda *args: None)


def test_stage_end_closes_the_pipeline_and_reports_slow_closing(
    tmp_path, monkeypatch, caplog):
  closed = []
  make_batches = toy_model.make_batches

  def batches(*args):
    try:
      yield from make_batches(*args)
    finally:
      closed.append(True)

  monkeypatch.setattr(toy_model, 'make_batches', batches)
  closing = ('waiting for the last checkpoint', 'closing the input pipeline',
             'closing the metric writer')
  with caplog.at_level('WARNING'):
    toy_train_main.train(str(tmp_path / 'fast'), 6)
  assert closed == [True]
  assert not [r for r in caplog.records if ' took ' in r.getMessage()]
  monkeypatch.setattr(loop, 'SLOW_CLOSE_SECONDS', 0.0)  # Everything is slow.
  with caplog.at_level('WARNING'):
    toy_train_main.train(str(tmp_path / 'slow'), 6)
  messages = [r.getMessage() for r in caplog.records]
  for what in closing:
    pattern = (rf'Stage toy: {what} took \d+\.\d s '
               rf'\(process CPU \d+\.\d s\)$')
    assert any(re.match(pattern, m) for m in messages), (what, messages)


def test_release_in_background_frees_on_its_own_thread(monkeypatch, caplog):
  freed_on = []

  class Pipeline:
    def __del__(self):
      freed_on.append(threading.current_thread().name)

  holder = [Pipeline()]
  monkeypatch.setattr(loop, 'SLOW_CLOSE_SECONDS', 0.0)  # Always warn.
  with caplog.at_level('WARNING'):
    thread = loop.release_in_background('toy', holder)
    thread.join(timeout=30)
  assert not thread.daemon  # The interpreter waits for it at exit.
  assert freed_on == ['toy-release-pipeline'] and holder == []
  assert any(re.match(r'Stage toy: freeing the input pipeline \(in the '
                      r'background\) took \d+\.\d s \(thread CPU \d+\.\d s\)$',
                      r.getMessage()) for r in caplog.records)
