"""Tests for wavegan_jax.training.checkpointing: resume order, exports."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wavegan_jax.training import checkpointing
from wavegan_jax.training import state as state_lib

import toy_model


def _encoder_params(hidden=4):
  return {'encoder': {'lstm': {'kernel': jnp.arange(3.0 * hidden).reshape(
      3, hidden), 'bias': jnp.ones((hidden,))}}}


def test_export_and_load_params_round_trip(tmp_path):
  path = str(tmp_path / 'acoustic_params')
  checkpointing.export_params(path, _encoder_params())
  loaded = checkpointing.load_params(
      path, expected=jax.eval_shape(_encoder_params), name='acoustic')
  np.testing.assert_array_equal(loaded['encoder']['lstm']['kernel'],
                                np.arange(12.0).reshape(3, 4))
  # Without an expected tree, the saved structure comes back as is.
  unchecked = checkpointing.load_params(path)
  assert jax.tree.map(np.shape, unchecked) == {
      'encoder': {'lstm': {'kernel': (3, 4), 'bias': (4,)}}}


def test_load_params_names_the_mismatching_leaf_and_both_shapes(tmp_path):
  path = str(tmp_path / 'acoustic_params')
  checkpointing.export_params(path, _encoder_params(hidden=4))
  with pytest.raises(checkpointing.CheckpointMismatchError) as error:
    checkpointing.load_params(path, expected=_encoder_params(hidden=5),
                              name='acoustic')
  assert str(error.value) == (
      f'acoustic params at {path} does not match the model: parameter '
      "'encoder/lstm/bias' is (4,) float32 in the checkpoint but the model "
      "expects (5,) float32; parameter 'encoder/lstm/kernel' is (3, 4) "
      'float32 in the checkpoint but the model expects (3, 5) float32')


def test_load_params_names_missing_extra_keys_and_dtypes(tmp_path):
  path = str(tmp_path / 'visual_params')
  checkpointing.export_params(path, _encoder_params())
  expected = {'encoder': {'lstm': {
      'kernel': jax.ShapeDtypeStruct((3, 4), jnp.bfloat16),
      'recurrent_kernel': jax.ShapeDtypeStruct((4, 4), jnp.float32)}}}
  with pytest.raises(checkpointing.CheckpointMismatchError) as error:
    checkpointing.load_params(path, expected=expected, name='visual')
  message = str(error.value)
  assert "missing from the checkpoint: ['encoder/lstm/recurrent_kernel']" in (
      message)
  assert "unexpected in the checkpoint: ['encoder/lstm/bias']" in message
  assert ("parameter 'encoder/lstm/kernel' is (3, 4) float32 in the "
          'checkpoint but the model expects (3, 4) bfloat16') in message
  with pytest.raises(FileNotFoundError, match='No params export or '
                     'checkpoint at /nonexistent/params'):
    checkpointing.load_params('/nonexistent/params')


def test_restore_or_init_order_checkpoint_then_init_from_then_scratch(
    tmp_path):
  first = checkpointing.StageCheckpointer(str(tmp_path / 'first'),
                                          async_save=False)
  state, source = first.restore_or_init(toy_model.init_state)
  assert source == 'scratch' and int(state['step']) == 0
  # Make the params recognisable, then checkpoint them at step 7.
  state = {**state, 'step': jnp.array(7, jnp.int32),
           'params': jax.tree.map(lambda x: x + 1.0, state['params'])}
  assert first.save(7, state)
  assert not first.save(7, state, force=True)  # Already on disk.
  assert first.latest_step() == 7

  resumed, source = checkpointing.StageCheckpointer(
      str(tmp_path / 'first')).restore_or_init(
          toy_model.init_state, init_from='/never/read')
  assert source == 'checkpoint' and int(resumed['step']) == 7
  assert toy_model.flat_params(resumed).keys() == toy_model.flat_params(
      state).keys()
  for key, value in toy_model.flat_params(resumed).items():
    np.testing.assert_array_equal(value, toy_model.flat_params(state)[key])
  assert type(resumed['opt_state']['mlp']) is type(state['opt_state']['mlp'])

  # A new stage directory takes only the params of the other run's
  # checkpoint: step 0, fresh optimizer, EMA starting from those params.
  second = checkpointing.StageCheckpointer(str(tmp_path / 'second'))
  fine_tuned, source = second.restore_or_init(
      toy_model.init_state, init_from=str(tmp_path / 'first'))
  assert source == 'init_from' and int(fine_tuned['step']) == 0
  kernel = state['params']['mlp']['dense1']['kernel']
  np.testing.assert_array_equal(
      fine_tuned['params']['mlp']['dense1']['kernel'], kernel)
  np.testing.assert_array_equal(
      fine_tuned['ema_params']['mlp']['dense1']['kernel'], kernel)
  assert int(fine_tuned['opt_state']['mlp'].count) == 0
  first.close()
  second.close()


def test_restore_or_init_from_a_wrong_export_names_the_stage(tmp_path):
  export = str(tmp_path / 'export')
  checkpointing.export_params(export, {'mlp': _encoder_params()})
  checkpointer = checkpointing.StageCheckpointer(str(tmp_path / 'generator'))
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match=r'generator params at .*export does not match '
                     r'the model: missing from the checkpoint: '
                     r"\['mlp/dense1/bias'"):
    checkpointer.restore_or_init(toy_model.init_state, init_from=export)


def test_stage_checkpointer_keeps_the_latest_and_honours_the_interval(
    tmp_path):
  checkpointer = checkpointing.StageCheckpointer(
      str(tmp_path / 'ckpt'), max_to_keep=2, save_interval_steps=2)
  state = toy_model.init_state()
  saved = [checkpointer.save(step, state) for step in range(1, 7)]
  checkpointer.save(7, state, force=True)
  checkpointer.wait()
  # Orbax always writes the first save of a directory.
  assert saved == [True, True, False, True, False, True]
  assert checkpointer.manager.all_steps() == [6, 7]
  checkpointer.close()


def test_preemption_guard_sets_a_flag_and_restores_the_handler():
  previous = signal.getsignal(signal.SIGTERM)
  with checkpointing.PreemptionGuard() as guard:
    assert not guard.requested
    os.kill(os.getpid(), signal.SIGTERM)
    assert guard.requested and guard.signal_number == signal.SIGTERM
  assert signal.getsignal(signal.SIGTERM) == previous
  preempted = checkpointing.Preempted(12, signal.SIGTERM)
  assert preempted.code == 143 and isinstance(preempted, SystemExit)
  assert str(preempted) == ('Stopped by signal 15 after saving step 12; '
                            'exit code 143.')


def test_resuming_with_or_without_ema_names_the_ema_leaves(tmp_path):
  # A run started with EMA copies (toy_model keeps them) resumed by a config
  # without them: an error naming ema_params and train.ema_decay, not
  # Orbax's tree dump.
  directory = str(tmp_path / 'ckpt')
  writer = checkpointing.StageCheckpointer(directory, async_save=False)
  writer.save(3, toy_model.init_state())
  writer.close()

  def init_without_ema():
    return {**toy_model.init_state(), 'ema_params': {}}

  reader = checkpointing.StageCheckpointer(directory)
  with pytest.raises(checkpointing.CheckpointMismatchError,
                     match=r"step 3 does not match the model: unexpected in "
                     r"the checkpoint: \['ema_params/mlp/dense1/bias'.*"
                     r'train.ema_decay is set'):
    reader.restore_or_init(init_without_ema)
  reader.close()
