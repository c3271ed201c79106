"""Tests for wavegan_jax.models.judge."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wavegan_jax.models import judge

TINY = dict(n_fft=128, hop_length=64, num_mels=16, channels=(4, 8),
            embedding_features=12, dropout=0.5)


def _audio(batch=4, samples=1024, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(samples) / 8000.0
  freqs = rng.uniform(200, 3000, size=(batch, 1))
  audio = 0.5 * np.sin(2 * np.pi * freqs * t)
  return jnp.asarray(audio + 0.05 * rng.normal(size=audio.shape), jnp.float32)


def test_shapes_dtypes_and_dropout():
  model = judge.AudioJudge(**TINY)
  audio = _audio()
  params = jax.jit(model.init)(jax.random.key(0), audio)
  assert set(params) == {"params"}  # No batch statistics.
  apply = jax.jit(model.apply, static_argnames="train")
  out = apply(params, audio)
  assert out["digit_logits"].shape == (4, 10)
  assert out["speaker_logits"].shape == (4, 6)
  assert out["embedding"].shape == (4, 12)
  for value in out.values():
    assert value.dtype == jnp.float32
  assert np.asarray(out["embedding"]).min() >= 0  # ReLU features.
  # Inference is deterministic; training applies dropout.
  np.testing.assert_array_equal(apply(params, audio)["digit_logits"],
                                out["digit_logits"])
  dropped = apply(params, audio, train=True,
                  rngs={"dropout": jax.random.key(1)})
  assert np.abs(dropped["digit_logits"] - out["digit_logits"]).max() > 0


def test_standardised_judge_ignores_gain():
  model = judge.AudioJudge(**TINY)
  audio = _audio()
  params = model.init(jax.random.key(0), audio)
  apply = jax.jit(model.apply)
  np.testing.assert_allclose(apply(params, 0.25 * audio)["digit_logits"],
                             apply(params, audio)["digit_logits"],
                             rtol=1e-3, atol=1e-4)


def test_bad_inputs_raise_clear_errors():
  model = judge.AudioJudge(**TINY)
  with pytest.raises(ValueError, match=r"expects audio \[batch, samples\]"):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1024,)))
  with pytest.raises(ValueError, match="needs at least 4 frames"):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, 128)))


def test_gradients_flow_and_adam_fits_labels():
  model = judge.AudioJudge(**{**TINY, "dropout": 0.1,
                              "embedding_features": 32})
  audio = _audio(batch=8)
  digits = jnp.arange(8) % 10
  speakers = jnp.arange(8) % 6
  params = jax.jit(model.init)(jax.random.key(0), audio)
  optimizer = optax.adam(1e-2)

  def loss_fn(p, rng):
    out = model.apply(p, audio, train=True, rngs={"dropout": rng})
    return (optax.softmax_cross_entropy_with_integer_labels(
        out["digit_logits"], digits).mean()
            + optax.softmax_cross_entropy_with_integer_labels(
                out["speaker_logits"], speakers).mean())

  @jax.jit
  def step(p, opt_state, rng):
    loss, grads = jax.value_and_grad(loss_fn)(p, rng)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(p, updates), opt_state, loss, grads

  opt_state = optimizer.init(params)
  losses = []
  for i in range(60):
    params, opt_state, loss, grads = step(params, opt_state,
                                          jax.random.key(i))
    losses.append(float(loss))
    if i == 0:
      for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert np.abs(np.asarray(leaf)).max() > 0, path
  assert np.mean(losses[-5:]) < 0.5 * losses[0]


def test_default_parameter_count_matches_docstring():
  params = jax.eval_shape(judge.AudioJudge().init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, 8192), jnp.float32))
  assert judge.count_params(params) == 321_392
