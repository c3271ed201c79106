"""The 'judges' stage: the digit + speaker classifier of real speech.

Trains `AudioJudge` with the sum of the digit and speaker cross-entropies on
real FSDD training takes: the AV-digits train split's `target` clips (one
training take at a random onset) and, with `judges.use_references`, its
`reference` clips (another take of the same speaker, whose digit is parsed
from `reference_id` '{digit}_{speaker}_{take}'). Every clip is augmented
(random circular shift, gain and a little white noise).

After the last step the judge classifies the whole evaluation split
(`judges.eval_split`, the FSDD test takes) with the exported params;
`<split>_digit_accuracy` and `<split>_speaker_accuracy` go to
<workdir>/judges/final_metrics.json.
"""

import functools
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax.data import batches
from wavegan_jax.training import optimizers as optimizers_lib
from wavegan_jax.training import stage_runner
from wavegan_jax.training import state as state_lib

STAGE = "judges"
EVAL_BATCH_SIZE = 100


def parse_digits(clip_ids) -> np.ndarray:
  """Digits of FSDD stems '{digit}_{speaker}_{take}' (bytes or str) -> int32.

  Raises:
    ValueError: naming the first id that is not such a stem.
  """
  digits = []
  for clip_id in np.asarray(clip_ids).reshape(-1):
    text = clip_id.decode() if isinstance(clip_id, bytes) else str(clip_id)
    head = text.split("_", 1)[0]
    if not head.isdigit() or "_" not in text:
      raise ValueError(f"clip id {text!r} is not an FSDD stem "
                       "'{digit}_{speaker}_{take}'")
    digits.append(int(head))
  return np.asarray(digits, np.int32)


def augment(rng: jax.Array, audio: jax.Array, *, max_shift: int,
            min_gain_db: float, max_gain_db: float,
            noise_std: float) -> jax.Array:
  """Random circular shift, gain and white noise of each clip [B, N]."""
  shift_rng, gain_rng, noise_rng, level_rng = jax.random.split(rng, 4)
  batch = audio.shape[0]
  if max_shift:
    shifts = jax.random.randint(shift_rng, (batch,), -max_shift,
                                max_shift + 1)
    audio = jax.vmap(jnp.roll)(audio, shifts)
  gain_db = jax.random.uniform(gain_rng, (batch, 1), minval=min_gain_db,
                               maxval=max_gain_db)
  audio = audio * 10.0 ** (gain_db / 20.0)
  if noise_std:
    level = jax.random.uniform(level_rng, (batch, 1), maxval=noise_std)
    audio = audio + level * jax.random.normal(noise_rng, audio.shape)
  return audio


def weighted_accuracy(logits, labels, weights) -> jax.Array:
  """sum(weight * [argmax == label]) / sum(weight)."""
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return jnp.sum(correct * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def _step(state, batch, rng, *, judge, optimizer, augment_kwargs, weights,
          use_references):
  """One Adam step on the digit and speaker cross-entropies."""
  audio, digits, speakers = batch["target"], batch["digit"], batch["speaker"]
  if use_references:
    audio = jnp.concatenate([audio, batch["reference"]], axis=0)
    digits = jnp.concatenate([digits, batch["reference_digit"]], axis=0)
    speakers = jnp.concatenate([speakers, batch["speaker"]], axis=0)
  augment_rng, dropout_rng = jax.random.split(rng)
  audio = augment(augment_rng, audio, **augment_kwargs)

  def loss_fn(params):
    outputs = judge.apply({"params": params}, audio, train=True,
                          rngs={"dropout": dropout_rng})
    terms = {
        "digit": jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
            outputs["digit_logits"], digits)),
        "speaker": jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
            outputs["speaker_logits"], speakers)),
    }
    total = sum(weights[name] * value for name, value in terms.items())
    return total, (terms, outputs)

  (total, (terms, outputs)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state["params"][STAGE])
  state = state_lib.apply_gradients(state, STAGE, grads, optimizer)
  state = state_lib.increment_step(state)
  grad_norm = state_lib.global_norm(grads)
  ones = jnp.ones(digits.shape, jnp.float32)
  metrics = {
      "loss": total, "digit_loss": terms["digit"],
      "speaker_loss": terms["speaker"],
      "digit_accuracy": weighted_accuracy(outputs["digit_logits"], digits,
                                          ones),
      "speaker_accuracy": weighted_accuracy(outputs["speaker_logits"],
                                            speakers, ones),
      "grad_norm": grad_norm,
      "learning_rate": state_lib.learning_rate_of(state["opt_state"][STAGE]),
      "is_finite": jnp.isfinite(total) & jnp.isfinite(grad_norm)}
  return state, metrics


def held_out_accuracy(judge, params, clips: dict, split: str) -> dict:
  """Digit and speaker accuracy of the judge on every clip of a split."""
  classify = jax.jit(lambda audio: judge.apply({"params": params}, audio))
  digit_hits = speaker_hits = 0
  count = len(clips["target"])
  for start in range(0, count, EVAL_BATCH_SIZE):
    part = slice(start, start + EVAL_BATCH_SIZE)
    outputs = classify(clips["target"][part])
    digit_hits += int(np.sum(np.argmax(outputs["digit_logits"], -1) ==
                             clips["digit"][part]))
    speaker_hits += int(np.sum(np.argmax(outputs["speaker_logits"], -1) ==
                               clips["speaker"][part]))
  return {f"{split}_digit_accuracy": digit_hits / count,
          f"{split}_speaker_accuracy": speaker_hits / count}


def make_spec(config: ml_collections.ConfigDict, *, manual_dir=None,
              data_dir=None) -> stage_runner.StageSpec:
  """The StageSpec of the judges stage (see the module docstring)."""
  train_config = optimizers_lib.stage_train_config(config, STAGE)
  if config.data.name != "av_digits":
    raise errors.UserFacingError(
        f"the judges train on av_digits clips; data.name is "
        f"{config.data.name!r}")
  judge = inference.judge_model(config)
  optimizer = optimizers_lib.optimizer_from(train_config)
  seed = config.seed + 5
  eval_split = config.judges.eval_split

  def init_fn():
    example = jnp.zeros((1, config.data.num_samples), jnp.float32)
    params = judge.init(jax.random.PRNGKey(seed), example)["params"]
    return state_lib.create_train_state({STAGE: params}, {STAGE: optimizer})

  step_fn = functools.partial(
      _step, judge=judge, optimizer=optimizer,
      augment_kwargs=dict(config.judges.augment),
      weights=dict(config.judges.loss_weights),
      use_references=config.judges.use_references)
  train_batches = batches.host_batches(
      config, split="train", global_batch_size=train_config.batch_size,
      seed=seed, manual_dir=manual_dir, data_dir=data_dir,
      fields=("target", "reference", "digit", "speaker", "reference_id"))

  def make_batches(start_step: int) -> Iterator[dict]:
    for batch in train_batches(start_step):
      batch["reference_digit"] = parse_digits(batch.pop("reference_id"))
      yield batch

  def final_fn(state) -> dict:
    clips = batches.split_clips(config, eval_split, manual_dir=manual_dir,
                                data_dir=data_dir)
    return held_out_accuracy(judge, state["params"][STAGE], clips, eval_split)

  return stage_runner.StageSpec(
      name=STAGE, train_config=train_config, init_fn=init_fn,
      step_fn=step_fn, make_batches=make_batches,
      export_fn=lambda state: state["params"][STAGE],
      metrics_to_show=("loss", "digit_accuracy", "speaker_accuracy"),
      seed=seed, final_fn=final_fn)
