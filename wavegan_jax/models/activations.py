"""Nonlinearities the waveform generators can choose between.

Snake (Liu Ziyin et al., 2020; BigVGAN's activation) adds a periodic term
to the identity, x + sin^2(alpha x) / alpha, with alpha learned per
channel: a stack of upsampling convolutions can then hold a periodic
waveform without building each period out of piecewise-linear ReLU pieces
(AV runs 34 and 38 in docs/experiment_log.md).
"""

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = ("relu", "snake")


class Snake(nn.Module):
  """x + sin^2(alpha x) / alpha over the last axis, alpha learned per
  channel (initialised to 1)."""

  @nn.compact
  def __call__(self, x):
    alpha = self.param("alpha", nn.initializers.ones, (x.shape[-1],),
                       jnp.float32).astype(x.dtype)
    return x + jnp.sin(alpha * x) ** 2 / (alpha + 1e-9)


def check_activation(name: str, owner: str) -> None:
  """Raises ValueError naming `owner` unless `name` is in ACTIVATIONS."""
  if name not in ACTIVATIONS:
    raise ValueError(f"{owner} must be one of {ACTIVATIONS}, got {name!r}")


def activation(name: str, layer: str):
  """The nonlinearity `name` as a callable; Snake's params are named
  `snake_{layer}`."""
  if name == "snake":
    return Snake(name=f"snake_{layer}")
  return nn.relu
