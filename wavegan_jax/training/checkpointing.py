"""Orbax checkpoints of a stage, params-only exports, and preemption.

Each stage has its own directory managed by one `StageCheckpointer` (an
Orbax `CheckpointManager`: latest-N retention, async saves, atomic step
directories). A stage resumes in this order (`restore_or_init`):

  1. the newest checkpoint in its own directory that restores (a restarted
     job); newer ones that do not (cut off, half deleted) are moved to
     `<directory>.damaged/<step>` with a warning naming each and why;
  2. an explicit `init_from` path: params only (fresh optimizer, step 0),
     from a params export or from another run's checkpoint directory;
  3. scratch: `init_fn()`.

The hand-off between stages is a params-only export: `export_params` writes
a pytree of arrays with Orbax (a directory, multi-host safe, readable
without this code), and `load_params` reads it back, first checking the
saved tree against the tree the model expects, so that a wrong encoder
config fails with a message naming the parameter and both shapes rather
than deep inside a train step.

Multi-process: every process calls every save / restore / export; Orbax
coordinates them (process 0 writes the metadata, all write their shards).
"""

import os
import shutil
import signal
import threading
from typing import Any, Callable, Optional

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from wavegan_jax import errors
from wavegan_jax.training import parallel

PyTree = Any
# A stage's params-only export: <workdir>/<stage>/export.
EXPORT_DIR = 'export'


CheckpointMismatchError = errors.CheckpointMismatchError


# ---------------------------------------------------------------------------
# Comparing trees.


def _key_name(key) -> str:
  for attr in ('key', 'idx', 'name'):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def flatten_by_path(tree: PyTree) -> dict[str, Any]:
  """{'encoder/lstm/kernel': leaf} for every leaf of a nested tree."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {'/'.join(_key_name(k) for k in path): leaf for path, leaf in leaves}


def _describe(leaf) -> str:
  return f'{tuple(leaf.shape)} {np.dtype(leaf.dtype).name}'


def check_tree_matches(saved: PyTree, expected: PyTree, where: str) -> None:
  """Raises CheckpointMismatchError unless both trees agree leaf by leaf.

  Args:
    saved: the tree found in a checkpoint (arrays or Orbax metadata, any
      leaf with .shape and .dtype).
    expected: the tree the model needs (arrays or jax.ShapeDtypeStruct).
    where: what was read (stage name and path), for the message.
  """
  saved_leaves = flatten_by_path(saved)
  expected_leaves = flatten_by_path(expected)
  problems = []
  missing = sorted(set(expected_leaves) - set(saved_leaves))
  extra = sorted(set(saved_leaves) - set(expected_leaves))
  if missing:
    problems.append(f'missing from the checkpoint: {missing}')
  if extra:
    problems.append(f'unexpected in the checkpoint: {extra}')
  for path in sorted(set(saved_leaves) & set(expected_leaves)):
    got, want = saved_leaves[path], expected_leaves[path]
    if (tuple(got.shape) != tuple(want.shape) or
        np.dtype(got.dtype) != np.dtype(want.dtype)):
      problems.append(f"parameter '{path}' is {_describe(got)} in the "
                      f'checkpoint but the model expects {_describe(want)}')
  if problems:
    raise CheckpointMismatchError(
        f'{where} does not match the model: ' + '; '.join(problems))


def one_line(error: BaseException, limit: int = 200) -> str:
  """The first line of an error's message, at most `limit` characters."""
  text = (str(error).strip().splitlines() or [type(error).__name__])[0]
  text = f'{type(error).__name__}: {text}'
  return text if len(text) <= limit else text[:limit - 3] + '...'


# ---------------------------------------------------------------------------
# Params-only exports (the hand-off to the next stage).


def _abstract_with_sharding(tree: PyTree,
                            sharding: jax.sharding.Sharding) -> PyTree:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)


def _absolute(path) -> epath.Path:
  """An absolute local path, or a cloud path (gs://...) as it is."""
  path = epath.Path(path)
  return path if '://' in os.fspath(path) else path.absolute()


def _locate_params(path) -> tuple[epath.Path, bool]:
  """Resolves `path` to (Orbax pytree directory, holds a whole train state).

  Accepts a params export, a stage checkpoint directory (its latest step is
  used) or one step directory of it.
  """
  path = _absolute(path)
  if not path.is_dir():
    raise FileNotFoundError(f'No params export or checkpoint at {path}')
  steps = [int(d.name) for d in path.iterdir()
           if d.name.isdigit() and (d / 'default').is_dir()]
  if steps:
    return path / str(max(steps)) / 'default', True
  if (path / 'default').is_dir():
    return path / 'default', True
  return path, False


def export_path(workdir: str, stage: str) -> str:
  """Where a stage of a run writes its params-only export."""
  return os.path.join(workdir, stage, EXPORT_DIR)


def export_params(path: str, params: PyTree) -> None:
  """Writes a params-only pytree (Orbax, a directory) for the next stage.

  Overwrites `path`; returns when the files are complete. All processes
  must call it.

  Args:
    path: the export directory, e.g. <workdir>/params.
    params: pytree of arrays, e.g. state['params'].
  """
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(_absolute(path), params, force=True)
  checkpointer.wait_until_finished()
  checkpointer.close()


def load_params(path: str, expected: Optional[PyTree] = None, name: str = '',
                sharding: Optional[jax.sharding.Sharding] = None) -> PyTree:
  """Reads params from an export or a checkpoint, checking them first.

  Args:
    path: a directory written by `export_params`, a stage checkpoint
      directory (its latest step's state['params'] is read), or one step
      directory of it.
    expected: the tree the model needs (arrays or jax.ShapeDtypeStruct,
      e.g. from jax.eval_shape). If given, the saved structure and every
      leaf's shape and dtype must match it, else CheckpointMismatchError.
    name: the stage or model being loaded, for error messages.
    sharding: where the arrays go; default replicated on all devices.

  Returns:
    The params pytree of jax.Arrays (structure of `expected` if given).
  """
  tree_dir, is_train_state = _locate_params(path)
  try:
    return _load_params(tree_dir, is_train_state, path, expected, name,
                        sharding)
  except CheckpointMismatchError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    # Orbax/tensorstore say a file is cut off or missing in a long message
    # of their own; the user needs to know which export is unreadable.
    raise errors.DamagedCheckpointError(
        f'{tree_dir}: cannot be read, damaged or incomplete '
        f'({one_line(error)}); train the stage again or restore the files'
    ) from error


def _load_params(tree_dir, is_train_state, path, expected, name, sharding):
  """load_params after the path is located (see there)."""
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(tree_dir)
  if metadata is None or metadata.item_metadata is None:
    raise FileNotFoundError(f'no Orbax metadata in {tree_dir}')
  saved = metadata.item_metadata.tree
  if is_train_state:
    if 'params' not in saved:
      raise CheckpointMismatchError(
          f'{name} checkpoint at {path} holds no params; keys: '
          f'{sorted(saved)}')
    saved = saved['params']
  where = f"{name + ' ' if name else ''}params at {path}"
  if expected is not None:
    check_tree_matches(saved, expected, where)
  if sharding is None:
    sharding = parallel.replicated(parallel.make_data_mesh())
  target = _abstract_with_sharding(saved if expected is None else expected,
                                   sharding)
  item = {'params': target} if is_train_state else target
  restored = checkpointer.restore(tree_dir, args=ocp.args.PyTreeRestore(
      item=item,
      restore_args=ocp.checkpoint_utils.construct_restore_args(item),
      partial_restore=is_train_state))
  checkpointer.close()
  return restored['params'] if is_train_state else restored


def load_step(directory: str, step: int) -> PyTree:
  """The whole train state saved at `step` in a stage checkpoint directory,
  as numpy arrays (no model needed, whatever devices saved it)."""
  tree_dir = _absolute(directory) / str(step) / 'default'
  checkpointer = ocp.PyTreeCheckpointer()
  try:
    metadata = checkpointer.metadata(tree_dir)
    if metadata is None or metadata.item_metadata is None:
      raise FileNotFoundError(f'no Orbax metadata in {tree_dir}')
    restore_args = jax.tree.map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
        metadata.item_metadata.tree)
    state = checkpointer.restore(tree_dir, args=ocp.args.PyTreeRestore(
        restore_args=restore_args))
  except Exception as error:  # pylint: disable=broad-except
    raise errors.DamagedCheckpointError(
        f'{tree_dir}: cannot be read, damaged or incomplete '
        f'({one_line(error)})') from error
  finally:
    checkpointer.close()
  return state


# ---------------------------------------------------------------------------
# The stage's checkpoint manager.


class StageCheckpointer:
  """The Orbax CheckpointManager of one stage's directory.

  Attributes:
    directory: where the step directories are (an epath.Path; local paths
      and gs:// both work).
    manager: the underlying ocp.CheckpointManager.
  """

  def __init__(self, directory: str, max_to_keep: int = 3,
               save_interval_steps: int = 1, async_save: bool = True):
    """Opens (creating if needed) a stage checkpoint directory.

    Args:
      directory: the checkpoint directory, e.g. <workdir>/checkpoints.
      max_to_keep: keep only this many latest checkpoints.
      save_interval_steps: an unforced save only writes at multiples of it
        (and the first save into an empty directory).
      async_save: write in a background thread after the device-to-host
        copy (the train step may then donate the state's buffers).
    """
    self.directory = _absolute(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, save_interval_steps=save_interval_steps,
        enable_async_checkpointing=async_save, create=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> Optional[int]:
    """The newest complete checkpoint's step, or None."""
    return self.manager.latest_step()

  def save(self, step: int, state: PyTree, force: bool = False) -> bool:
    """Saves `state` as step `step` (async unless disabled); True if saved.

    Unforced saves honour save_interval_steps; a step already on disk is
    not written again.
    """
    if step in self.manager.all_steps():
      return False
    return self.manager.save(step, args=ocp.args.StandardSave(state),
                             force=force)

  def restore(self, step: int, abstract_state: PyTree) -> PyTree:
    """Restores step `step` onto the shapes/shardings of `abstract_state`.

    Raises:
      CheckpointMismatchError: naming each leaf that is missing, extra or
        of another shape, when the saved state is not the config's (e.g.
        another model size, or EMA copies kept by one and not the other).
    """
    step_dir = self.directory / str(step) / 'default'
    if step_dir.is_dir():
      checkpointer = ocp.PyTreeCheckpointer()
      metadata = checkpointer.metadata(step_dir)
      checkpointer.close()
      if metadata is None or metadata.item_metadata is None:
        raise FileNotFoundError(f'no Orbax metadata in {step_dir}')
      saved = metadata.item_metadata.tree
      try:
        check_tree_matches(saved, abstract_state,
                           f'checkpoint {self.directory} step {step}')
      except CheckpointMismatchError as error:
        hint = ''
        if 'ema_params/' in str(error):
          hint = (' (ema_params are the EMA copies kept when '
                  'train.ema_decay is set: resume with the ema_decay the '
                  'run was started with)')
        raise CheckpointMismatchError(
            f'{error}{hint}; resume with the config that wrote it, or '
            'start in a new workdir') from None
    return self.manager.restore(
        step, args=ocp.args.StandardRestore(abstract_state))

  def restore_or_init(self, init_fn: Callable[[], PyTree],
                      init_from: Optional[str] = None,
                      mesh: Optional[jax.sharding.Mesh] = None
                     ) -> tuple[PyTree, str]:
    """Resumes this stage, else initializes it (module docstring order).

    Args:
      init_fn: () -> step-0 train state (state.create_train_state); it is
        traced by jax.eval_shape and run under jax.jit, so it must be pure.
      init_from: params export or other run's checkpoint directory to take
        params from when this stage has no checkpoint yet.
      mesh: the data mesh; the state comes back replicated on it (default:
        all devices).

    Returns:
      (state, source), source one of 'checkpoint', 'init_from', 'scratch'.
    """
    mesh = parallel.make_data_mesh() if mesh is None else mesh
    sharding = parallel.replicated(mesh)
    abstract_state = _abstract_with_sharding(jax.eval_shape(init_fn),
                                             sharding)
    restored = self._restore_newest_good(abstract_state)
    if restored is not None:
      return restored, 'checkpoint'
    state = jax.jit(init_fn, out_shardings=sharding)()
    if init_from is None:
      logging.info('No checkpoint in %s: starting from scratch.',
                   self.directory)
      return state, 'scratch'
    logging.info('Initializing params from %s', init_from)
    params = load_params(init_from, expected=abstract_state['params'],
                         name=self.directory.name,
                         sharding=sharding)
    state = {**state, 'params': params}
    if state['ema_params']:
      state['ema_params'] = {model: jax.tree.map(lambda x: x.copy(),
                                                 params[model])
                             for model in state['ema_params']}
    return state, 'init_from'

  def _restore_newest_good(self, abstract_state: PyTree) -> Optional[PyTree]:
    """The newest checkpoint that restores, or None if there is none.

    Newer ones that fail to restore are moved aside with a warning (so the
    steps are saved again when training reaches them).

    Raises:
      CheckpointMismatchError: a checkpoint of another config (not damage).
      errors.DamagedCheckpointError: every checkpoint fails to restore.
    """
    failures = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state = self.restore(step, abstract_state)
      except CheckpointMismatchError:
        raise
      except Exception as error:  # pylint: disable=broad-except
        failures.append((step, one_line(error)))
        continue
      if failures:
        self._set_aside(failures, step)
      logging.info('Resuming from %s step %d', self.directory, step)
      return state
    if failures:
      raise errors.DamagedCheckpointError(
          f'{self.directory}: no checkpoint restores ('
          + '; '.join(f'step {step}: {why}' for step, why in failures)
          + '); delete the directory to train the stage from scratch')
    return None

  def _set_aside(self, failures, good_step: int) -> None:
    """Moves damaged step directories to <directory>.damaged/ and warns."""
    aside = epath.Path(f'{self.directory}.damaged')
    for step, why in failures:
      target = aside / str(step)
      if jax.process_index() == 0:
        aside.mkdir(parents=True, exist_ok=True)
        if target.exists():
          shutil.rmtree(os.fspath(target))
        (self.directory / str(step)).rename(target)
      logging.warning(
          'Checkpoint %s step %d cannot be restored (%s): skipped it, moved '
          'it to %s; resuming from step %d.', self.directory, step, why,
          target, good_step)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices('checkpoint set aside')
    self.manager.reload()

  def wait(self) -> None:
    """Blocks until every pending async save is on disk."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self.manager.close()


# ---------------------------------------------------------------------------
# Preemption.


class PreemptionGuard:
  """Turns SIGTERM / SIGINT into a flag the train loop checks every step.

  On the signal, the loop (loop.run_stage) saves a checkpoint of the
  current step, waits for it, and raises `Preempted` (a SystemExit with
  code 128 + signal number: 143 for SIGTERM, 130 for SIGINT, what a shell
  reports for a process killed by that signal), so the job stops cleanly
  and a restart resumes from that checkpoint. A second signal while saving
  is only logged.

  Use as a context manager around the loop; the previous handlers come
  back on exit. Only the main thread can install handlers: elsewhere it
  installs none (and never fires).
  """

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self.signals = tuple(signals)
    self.signal_number: Optional[int] = None
    self._previous = {}

  @property
  def requested(self) -> bool:
    """Whether a stop signal has arrived."""
    return self.signal_number is not None

  def _handle(self, signum, frame):
    del frame
    logging.warning('Received signal %d: will checkpoint and stop.', signum)
    if self.signal_number is None:
      self.signal_number = signum

  def __enter__(self) -> 'PreemptionGuard':
    if threading.current_thread() is threading.main_thread():
      for signum in self.signals:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}


class Preempted(SystemExit):
  """Raised after a signal-triggered checkpoint; exits with 128 + signum."""

  def __init__(self, step: int, signal_number: int):
    super().__init__(128 + signal_number)
    self.step = step
    self.signal_number = signal_number

  def __str__(self) -> str:
    return (f'Stopped by signal {self.signal_number} after saving step '
            f'{self.step}; exit code {self.code}.')
