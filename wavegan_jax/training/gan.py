"""The adversarial half of a GAN train step, shared by the generator stage
and the unconditional WaveGAN.

A critic is passed as `critic(d_params, waveform, condition, rng) -> logits
[B]` (condition None when unconditional), so the same code serves the
projection-conditioned WaveGAN discriminator, the STFT discriminator and the
original unconditional one.
"""

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax

from wavegan_jax import losses
from wavegan_jax.training import state as state_lib

Critic = Callable[[dict, jax.Array, Optional[jax.Array], jax.Array],
                  jax.Array]


# Metrics every critic update reports ('gradient_penalty' too under WGAN-GP).
D_METRICS = ("d_loss", "d_real", "d_fake", "d_grad_norm")


def critic_loss(critic: Critic, d_params, real: jax.Array, fake: jax.Array,
                condition: Optional[jax.Array], rng: jax.Array, *, kind: str,
                gp_weight: float, gp_examples: Optional[int] = None
               ) -> tuple[jax.Array, dict]:
  """The critic's loss and its 'd_real', 'd_fake' (, 'gradient_penalty').

  Gradients reach `fake` through the logits but not through the penalty's
  interpolates; `discriminator_update` documents the arguments.
  """
  real_rng, fake_rng, gp_rng, gp_shuffle_rng = jax.random.split(rng, 4)
  real_logits = critic(d_params, real, condition, real_rng)
  fake_logits = critic(d_params, fake, condition, fake_rng)
  loss = losses.discriminator_loss(kind, real_logits, fake_logits)
  metrics = {"d_real": losses.mean_logit(real_logits),
             "d_fake": losses.mean_logit(fake_logits)}
  if kind == "wgan-gp":
    count = real.shape[0] if gp_examples is None else gp_examples
    gp_condition = None if condition is None else condition[:count]
    penalty = losses.gradient_penalty(
        lambda x: critic(d_params, x, gp_condition, gp_shuffle_rng),
        real[:count], jax.lax.stop_gradient(fake[:count]), gp_rng)
    loss = loss + gp_weight * penalty
    metrics["gradient_penalty"] = penalty
  return loss, metrics


def discriminator_update(state: dict, critic: Critic, real: jax.Array,
                         fake: jax.Array, condition: Optional[jax.Array],
                         rng: jax.Array, *, kind: str,
                         gp_weight: float,
                         optimizer: optax.GradientTransformation,
                         gp_examples: Optional[int] = None,
                         name: str = "discriminator"
                        ) -> tuple[dict, dict]:
  """One critic update on a real and a (stop-gradient) generated batch.

  Args:
    state: the train state with a 'discriminator' model.
    critic: (d_params, waveform, condition, rng) -> logits.
    real: real waveforms.
    fake: generated waveforms (gradients are not taken through them).
    condition: what real and fake are conditioned on (None: nothing).
    rng: for phase shuffle and the gradient penalty's interpolation.
    kind: 'wgan-gp', 'hinge' or 'lsgan'.
    gp_weight: lambda of the gradient penalty (WGAN-GP only).
    optimizer: the discriminator's optimizer.
    name: the critic's model in the train state.
    gp_examples: take the gradient penalty on the first this many
      real/fake pairs only (None: all). The penalty is a mean over random
      interpolates, so a subset is an unbiased, noisier estimate of it with
      a cheaper double backward (at WaveGAN d=16 on a CPU only 1.07-1.13x
      faster per step: docs/experiment_log.md, WaveGAN run 14).

  Returns:
    (new state, metrics with 'd_loss', 'd_real', 'd_fake', 'd_grad_norm' and
    for WGAN-GP 'gradient_penalty'); the step is not incremented.
  """
  fake = jax.lax.stop_gradient(fake)

  def loss_fn(d_params):
    return critic_loss(critic, d_params, real, fake, condition, rng,
                       kind=kind, gp_weight=gp_weight,
                       gp_examples=gp_examples)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state["params"][name])
  state = state_lib.apply_gradients(state, name, grads, optimizer)
  metrics.update(d_loss=loss, d_grad_norm=state_lib.global_norm(grads))
  return state, metrics


def discriminator_updates(state, critic, real, condition, fake_fn, rng, *,
                          num_updates, kind, gp_weight, optimizer,
                          gp_examples=None, name="discriminator"):
  """`num_updates` critic updates, each on its own chunk of the batch.

  The real batch (and its condition) is split into `num_updates` equal
  chunks, one per update, as WaveGAN draws a new real batch for each critic
  step; fake_fn(rng, start, size) generates the fakes of examples
  [start, start + size) (for a conditional generator, from their inputs).
  gp_examples is per update (see discriminator_update) and must be in
  [1, batch / num_updates].

  Returns:
    (new state, metrics of the last update).
  """
  batch = real.shape[0]
  if batch % num_updates:
    raise ValueError(f"The real batch ({batch}) must split evenly into "
                     f"d_steps={num_updates} critic updates.")
  chunk = batch // num_updates
  if gp_examples is not None and not (
      isinstance(gp_examples, int) and not isinstance(gp_examples, bool)
      and 1 <= gp_examples <= chunk):
    raise ValueError(f"gp_examples must be an int in [1, {chunk}] (the "
                     f"examples of one critic update), got {gp_examples!r}")
  metrics = {}
  for i, update_rng in enumerate(jax.random.split(rng, num_updates)):
    fake_rng, critic_rng = jax.random.split(update_rng)
    part = slice(i * chunk, (i + 1) * chunk)
    part_condition = None if condition is None else condition[part]
    fake = fake_fn(fake_rng, i * chunk, chunk)
    state, metrics = discriminator_update(
        state, critic, real[part], fake, part_condition, critic_rng, kind=kind,
        gp_weight=gp_weight, optimizer=optimizer, gp_examples=gp_examples,
        name=name)
  return state, metrics
