"""Batch-first LSTM layers shared by the acoustic, visual and generator models.

`LSTM` runs one (optionally bidirectional) layer of `nn.OptimizedLSTMCell`
over a [batch, time, features] sequence with `nn.RNN` (a `lax.scan` inside);
`StackedLSTM` stacks several of them.
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


class LSTM(nn.Module):
  """One LSTM layer over a batch-first sequence.

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
  def __call__(self, inputs: jax.Array,
               seq_lengths: Optional[jax.Array] = None) -> jax.Array:
    """Runs the layer.

    Args:
      inputs: [B, T, F] float sequence.
      seq_lengths: optional [B] int lengths; steps past them are padding.

    Returns:
      [B, T, features * (2 if bidirectional else 1)].
    """
    if inputs.ndim != 3:
      raise ValueError(
          f"LSTM expects [batch, time, features], got shape {inputs.shape}")
    forward = nn.RNN(nn.OptimizedLSTMCell(self.features), name="forward")
    outputs = forward(inputs, seq_lengths=seq_lengths)
    if not self.bidirectional:
      return outputs
    backward = nn.RNN(nn.OptimizedLSTMCell(self.features), name="backward")
    backward_outputs = backward(inputs, seq_lengths=seq_lengths, reverse=True,
                                keep_order=True)
    return jnp.concatenate([outputs, backward_outputs], axis=-1)


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
  def __call__(self, inputs: jax.Array,
               seq_lengths: Optional[jax.Array] = None) -> jax.Array:
    """Runs all layers; see `LSTM.__call__`."""
    if self.num_layers < 1:
      raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
    x = inputs
    for layer in range(self.num_layers):
      x = LSTM(self.features, self.bidirectional, name=f"layer_{layer}")(
          x, seq_lengths)
    return x
