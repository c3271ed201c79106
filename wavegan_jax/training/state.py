"""The train state shared by every stage, and the optimizers that update it.

Every stage (acoustic, visual, generator + discriminator, unconditional
WaveGAN) keeps its trainable state in ONE plain-dict pytree of arrays:

  {
    'step': int32 scalar,                      # updates applied so far
    'params': {model_name: params},            # e.g. {'acoustic': ...}
    'opt_state': {model_name: optax state},    # one optimizer per model
    'ema_params': {model_name: params} or {},  # EMA copies, where used
  }

An autoencoder stage has params {'acoustic': ...}; a GAN stage has
{'generator': ..., 'discriminator': ...}, each with its own optimizer.
Frozen encoders are NOT part of the state: a train step closes over them as
constants (after `parallel.replicate`), so they are neither differentiated,
updated nor re-saved.

The optimizers (`optax.GradientTransformation`) are not stored in the state:
they are pure functions the train step closes over, the same ones given to
`create_train_state`.
"""

from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

PyTree = Any
TrainState = dict


def create_train_state(
    params: Mapping[str, PyTree],
    optimizers: Mapping[str, optax.GradientTransformation],
    ema_decay: Optional[float] = None,
    ema_models: Optional[Sequence[str]] = None,
) -> TrainState:
  """Builds the step-0 train state.

  Args:
    params: {model_name: params pytree}; every model gets an optimizer.
    optimizers: {model_name: optax transformation}, same keys as `params`.
    ema_decay: if set, keep exponential-moving-average copies of the params
      (pass the same decay to `apply_gradients`). None: no EMA.
    ema_models: which models get an EMA copy (default: all of them); e.g.
      ('generator',) in a GAN stage.

  Returns:
    The state dict described in the module docstring, step 0.

  Raises:
    ValueError: if the keys of `params` and `optimizers` differ, or an
      `ema_models` name is not a model.
  """
  if set(params) != set(optimizers):
    raise ValueError(
        f'params and optimizers must name the same models; got params '
        f'{sorted(params)} and optimizers {sorted(optimizers)}')
  ema_params = {}
  if ema_decay is not None:
    ema_models = list(params) if ema_models is None else list(ema_models)
    unknown = sorted(set(ema_models) - set(params))
    if unknown:
      raise ValueError(f'ema_models {unknown} are not models in '
                       f'{sorted(params)}')
    # A copy, so that donating the state never aliases params and EMA.
    ema_params = {name: jax.tree.map(jnp.array, params[name])
                  for name in ema_models}
  return {
      'step': jnp.zeros((), jnp.int32),
      'params': dict(params),
      'opt_state': {name: optimizers[name].init(params[name])
                    for name in params},
      'ema_params': ema_params,
  }


def apply_gradients(state: TrainState, name: str, grads: PyTree,
                    optimizer: optax.GradientTransformation,
                    ema_decay: Optional[float] = None) -> TrainState:
  """Applies one optimizer update to model `name`; does NOT bump the step.

  A GAN step calls this once per model (or five times for the critic) and
  `increment_step` once at the end.

  Args:
    state: the train state.
    name: which model in state['params'] to update.
    grads: gradients with the structure of state['params'][name].
    optimizer: the transformation `create_train_state` got for `name`.
    ema_decay: the EMA decay, required iff `name` has an EMA copy. The EMA
      is updated as ema = decay * ema + (1 - decay) * new_params.

  Returns:
    A new state with params[name], opt_state[name] (and ema_params[name])
    replaced.
  """
  if name not in state['params']:
    raise KeyError(f'No model {name!r} in the train state; models are '
                   f'{sorted(state["params"])}')
  has_ema = name in state['ema_params']
  if has_ema != (ema_decay is not None):
    raise ValueError(
        f'Model {name!r} {"has" if has_ema else "has no"} EMA params but '
        f'ema_decay={ema_decay}; pass the decay iff the model has EMA.')
  params = state['params'][name]
  updates, opt_state = optimizer.update(grads, state['opt_state'][name],
                                        params)
  params = optax.apply_updates(params, updates)
  new_state = dict(state)
  new_state['params'] = {**state['params'], name: params}
  new_state['opt_state'] = {**state['opt_state'], name: opt_state}
  if has_ema:
    ema = optax.incremental_update(params, state['ema_params'][name],
                                   step_size=1.0 - ema_decay)
    new_state['ema_params'] = {**state['ema_params'], name: ema}
  return new_state


def ema_decay_at(decay: float, step) -> jax.Array:
  """The EMA decay of update `step` (0-based): min(decay, (1+t)/(10+t)).

  The warm-up keeps the first updates from being dominated by the random
  initialisation, which a fixed 0.999 would still weigh e^-1 after 1000
  updates.
  """
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(jnp.float32(decay), (1.0 + step) / (10.0 + step))


def averaged_params(state: TrainState, name: str) -> PyTree:
  """Model `name`'s EMA copy where one is kept, else its params."""
  return state['ema_params'].get(name, state['params'][name])


def increment_step(state: TrainState) -> TrainState:
  """Returns the state with its step counter advanced by one."""
  return {**state, 'step': state['step'] + 1}


def step_rng(base_rng: jax.Array, step) -> jax.Array:
  """The rng of one step: fold_in(base_rng, step), the same on resume."""
  return jax.random.fold_in(base_rng, step)


def global_norm(tree: PyTree) -> jax.Array:
  """The L2 norm of all leaves together (e.g. of the gradients)."""
  return optax.global_norm(tree)


def make_optimizer(learning_rate: float,
                   b1: float = 0.9,
                   b2: float = 0.999,
                   weight_decay: float = 0.0,
                   grad_clip_norm: Optional[float] = None,
                   warmup_steps: int = 0,
                   schedule: str = 'constant',
                   total_steps: Optional[int] = None,
                   decay_start: int = 0,
                   eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam (AdamW if weight_decay > 0) with an optional clip and schedule.

  The hyper-parameters are injected (`optax.inject_hyperparams`), so the
  current learning rate is in the optimizer state: read it with
  `learning_rate_of(opt_state)` to log it.

  Args:
    learning_rate: the peak learning rate.
    b1: Adam's first-moment decay (WaveGAN: 0.5).
    b2: Adam's second-moment decay (WaveGAN: 0.9).
    weight_decay: decoupled weight decay (AdamW); 0 gives plain Adam.
    grad_clip_norm: if set and > 0, clip the gradients to this global
      norm first (None or 0: no clipping).
    warmup_steps: linear warm-up from 0 to `learning_rate` over this many
      steps.
    schedule: 'constant', or 'cosine' (decay to 0 at `total_steps`).
    total_steps: the stage's step count; required for 'cosine'.
    decay_start: with 'cosine', hold `learning_rate` until this step and
      decay over the rest (0: decay from the end of the warm-up).
    eps: Adam's epsilon.

  Returns:
    The optax transformation.
  """
  if schedule == 'constant':
    main = optax.constant_schedule(learning_rate)
  elif schedule == 'cosine':
    held = max(warmup_steps, decay_start)
    if not total_steps or total_steps <= held:
      raise ValueError(f'schedule=cosine needs total_steps > warmup_steps='
                       f'{warmup_steps} and > decay_start={decay_start}; got '
                       f'total_steps={total_steps}')
    main = optax.cosine_decay_schedule(learning_rate, total_steps - held)
    if held > warmup_steps:
      main = optax.join_schedules(
          [optax.constant_schedule(learning_rate), main],
          [held - warmup_steps])
  else:
    raise ValueError(f"schedule must be 'constant' or 'cosine', got "
                     f'{schedule!r}')
  lr_schedule = main
  if warmup_steps:
    warmup = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    lr_schedule = optax.join_schedules([warmup, main], [warmup_steps])

  def adam_chain(learning_rate, b1, b2, eps, weight_decay):
    # Called with the injected (array-valued) hyper-parameters; plain Adam
    # when no decay was asked for, decided here from the Python value.
    if weight_decay_is_used:
      adam = optax.adamw(learning_rate, b1, b2, eps,
                         weight_decay=weight_decay)
    else:
      adam = optax.adam(learning_rate, b1, b2, eps)
    if not grad_clip_norm:  # None or 0: no clipping.
      return adam
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), adam)

  weight_decay_is_used = bool(weight_decay)
  return optax.inject_hyperparams(adam_chain)(
      learning_rate=lr_schedule, b1=b1, b2=b2, eps=eps,
      weight_decay=weight_decay)


def learning_rate_of(opt_state: PyTree) -> jax.Array:
  """The learning rate of the last update, from a `make_optimizer` state."""
  return opt_state.hyperparams['learning_rate']
