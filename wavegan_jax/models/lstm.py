"""Batch-first LSTM layers shared by the acoustic, visual and generator models.

`LSTM` runs one (optionally bidirectional) LSTM layer over a [batch, time,
features] sequence; `StackedLSTM` stacks several of them.

The parameters are laid out, named and initialised exactly as
`nn.OptimizedLSTMCell`'s inside `nn.RNN` (one cell per direction,
`OptimizedLSTMCell_0` forward and `OptimizedLSTMCell_1` backward), so
checkpoints of either formulation load into the other. The computation is
arranged for a CPU, where the recurrence is a chain of small serial steps:

* the input projection of every step (and the bias) is one matrix product
  before the recurrence, not a small one inside each step;
* both directions advance in the same loop, as a batch of two in one
  batched matrix product per step: half the serial steps of running them one
  after the other, each twice as wide;
* the backward pass is written out (`_recurrence`'s VJP): its loop carries
  only the state and cell gradients, and the recurrent kernel's gradient is
  one product over all steps after it, where autodiff of the loop adds a
  small product into a carried kernel gradient at every step.

Timings against the flax formulation are in docs/performance.md.

The numbers equal nn.RNN(nn.OptimizedLSTMCell) up to float summation order
(tests/lstm_test.py).
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

GATES = ("i", "f", "g", "o")


class _GateParams(nn.Module):
  """One gate's kernel (and bias), named as flax's `DenseParams`."""
  in_features: int
  features: int
  use_bias: bool
  kernel_init: Callable

  @nn.compact
  def __call__(self):
    kernel = self.param("kernel", self.kernel_init,
                        (self.in_features, self.features), jnp.float32)
    if not self.use_bias:
      return kernel, None
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,),
                      jnp.float32)
    return kernel, bias


class _CellParams(nn.Module):
  """One direction's parameters, as `nn.OptimizedLSTMCell` lays them out.

  Returns (input kernel [F, 4H], recurrent kernel [H, 4H], bias [4H]), the
  gates in the order i, f, g, o.
  """
  features: int

  @nn.compact
  def __call__(self, in_features: int):
    input_kernels = [
        _GateParams(in_features, self.features, False,
                    nn.initializers.lecun_normal(), name=f"i{gate}")()[0]
        for gate in GATES]
    recurrent = [
        _GateParams(self.features, self.features, True,
                    nn.initializers.orthogonal(), name=f"h{gate}")()
        for gate in GATES]
    return (jnp.concatenate(input_kernels, axis=-1),
            jnp.concatenate([kernel for kernel, _ in recurrent], axis=-1),
            jnp.concatenate([bias for _, bias in recurrent], axis=-1))


def _cell_step(projection, cell, state, recurrent_kernel):
  """One step of D LSTMs: ([D, B, 4H], [D, B, H] x2) -> gates, cell, state.

  The gates are returned after their nonlinearities (i, f, o sigmoid, g
  tanh), as the backward pass reads them.
  """
  z = projection + jnp.einsum("dbh,dhg->dbg", state, recurrent_kernel)
  i, f, g, o = jnp.split(z, 4, axis=-1)
  i, f, g, o = (jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g),
                jax.nn.sigmoid(o))
  cell = f * cell + i * g
  state = o * jnp.tanh(cell)
  return (i, f, g, o), cell, state


def _scan_forward(projections, recurrent_kernel, keep_residuals):
  """The forward loop; with keep_residuals also every step's cell and gates."""
  _, batch, gates = projections[0].shape
  zeros = jnp.zeros((len(projections), batch, gates // 4),
                    projections[0].dtype)

  def step(carry, step_projections):
    cell, state = carry
    # Stacking per step, not once for the whole sequence: XLA fuses it into
    # the add, where a [T, D, B, 4H] stack was a copy of its own.
    activations, cell, state = _cell_step(
        jnp.stack(step_projections), cell, state, recurrent_kernel)
    outputs = state
    if keep_residuals:
      outputs = (state, cell, jnp.concatenate(activations, axis=-1))
    return (cell, state), outputs

  _, outputs = jax.lax.scan(step, (zeros, zeros), tuple(projections))
  return outputs


@jax.custom_vjp
def _recurrence(projections: Sequence[jax.Array],
                recurrent_kernel: jax.Array) -> jax.Array:
  """Runs D independent LSTMs in one loop.

  Args:
    projections: D arrays [T, B, 4H]: each direction's input projections
      plus bias, in its own time order.
    recurrent_kernel: [D, H, 4H].

  Returns:
    [T, D, B, H] hidden states, in each direction's own time order.
  """
  return _scan_forward(projections, recurrent_kernel, keep_residuals=False)


def _recurrence_forward(projections, recurrent_kernel):
  states, cells, activations = _scan_forward(
      projections, recurrent_kernel, keep_residuals=True)
  return states, (states, cells, activations, recurrent_kernel)


def _recurrence_backward(residuals, state_cotangents):
  """The backward loop carries only dh and dc.

  Autodiff of the scan would also carry the recurrent kernel's gradient and
  add one [H, B] x [B, 4H] product into it at every step; here the loop
  emits each step's gate gradients and the kernel's gradient is one product
  over all steps after it.
  """
  states, cells, activations, recurrent_kernel = residuals
  zeros = jnp.zeros_like(states[0])
  previous_cells = jnp.concatenate([zeros[None], cells[:-1]])
  num_directions = states.shape[1]

  def step(carry, inputs):
    state_recurrent_grad, cell_grad_next = carry
    state_output_grad, cell, previous_cell, gates = inputs
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    tanh_cell = jnp.tanh(cell)
    state_grad = state_output_grad + state_recurrent_grad
    cell_grad = cell_grad_next + state_grad * o * (1 - tanh_cell * tanh_cell)
    gate_grads = jnp.concatenate([
        cell_grad * g * i * (1 - i),
        cell_grad * previous_cell * f * (1 - f),
        cell_grad * i * (1 - g * g),
        state_grad * tanh_cell * o * (1 - o)], axis=-1)
    previous_state_grad = jnp.einsum("dbg,dhg->dbh", gate_grads,
                                     recurrent_kernel)
    return ((previous_state_grad, cell_grad * f),
            tuple(gate_grads[d] for d in range(num_directions)))

  _, gate_grads = jax.lax.scan(
      step, (zeros, zeros),
      (state_cotangents, cells, previous_cells, activations), reverse=True)
  previous_states = jnp.concatenate([zeros[None], states[:-1]])
  kernel_grad = jnp.stack([
      jnp.einsum("tbh,tbg->hg", previous_states[:, d], gate_grads[d])
      for d in range(num_directions)])
  return gate_grads, kernel_grad


_recurrence.defvjp(_recurrence_forward, _recurrence_backward)


class LSTM(nn.Module):
  """One LSTM layer over a batch-first sequence (zero initial state).

  Attributes:
    features: hidden size of each direction.
    bidirectional: run a second LSTM right-to-left and concatenate its outputs
      (aligned to the input order) to the forward ones.

  Input: [B, T, F]. Output: [B, T, features] (or [B, T, 2 * features] when
  bidirectional).
  """
  features: int
  bidirectional: bool = False

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    """Runs the layer.

    Args:
      inputs: [B, T, F] float sequence.

    Returns:
      [B, T, features * (2 if bidirectional else 1)].
    """
    if inputs.ndim != 3:
      raise ValueError(
          f"LSTM expects [batch, time, features], got shape {inputs.shape}")
    directions = 2 if self.bidirectional else 1
    cells = [_CellParams(self.features, name=f"OptimizedLSTMCell_{d}")(
        inputs.shape[-1]) for d in range(directions)]
    dtype = jnp.promote_types(inputs.dtype, cells[0][0].dtype)
    inputs = inputs.astype(dtype)
    # Every step's input projection in one product per direction; the
    # backward direction reads the sequence reversed.
    sequences = (inputs, inputs[:, ::-1])
    projections = [
        jnp.einsum("btf,fg->tbg", sequence, input_kernel.astype(dtype))
        + bias.astype(dtype)
        for sequence, (input_kernel, _, bias) in zip(sequences, cells)]
    recurrent_kernel = jnp.stack([kernel for _, kernel, _ in cells])
    states = _recurrence(tuple(projections),
                         recurrent_kernel.astype(dtype))
    outputs = states[:, 0]
    if self.bidirectional:
      outputs = jnp.concatenate([outputs, states[::-1, 1]], axis=-1)
    return jnp.swapaxes(outputs, 0, 1)


class StackedLSTM(nn.Module):
  """Several LSTM layers, each fed the previous layer's outputs.

  Attributes:
    features: hidden size of each direction of every layer.
    num_layers: how many layers.
    bidirectional: whether every layer is bidirectional.

  Input: [B, T, F]. Output: [B, T, features * (2 if bidirectional else 1)].
  """
  features: int
  num_layers: int = 1
  bidirectional: bool = False

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    """Runs all layers; see `LSTM.__call__`."""
    if self.num_layers < 1:
      raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
    x = inputs
    for layer in range(self.num_layers):
      x = LSTM(self.features, self.bidirectional, name=f"layer_{layer}")(x)
    return x
