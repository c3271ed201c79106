"""1-D convolutions and transposed convolutions with WaveGAN's conventions.

API (kept stable for the other modules):
  conv1d(x, kernel, stride, padding) / conv_transpose1d(x, kernel, stride,
  padding): functional forms; x is [batch, length, channels], kernel is
  [kernel_size, in_channels, out_channels].
  Conv1D / ConvTranspose1D: Flax modules with params `kernel` and `bias`
  shaped like `nn.Conv` / `nn.ConvTranspose`.
  'SAME' padding: Conv1D gives ceil(length / stride) outputs, ConvTranspose1D
  gives length * stride outputs, as TensorFlow's conv1d / conv1d_transpose.

TEMPORARY: the reference lax formulation; the fast one replaces it.
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def conv1d(x, kernel, stride=1, padding="SAME"):
  return jax.lax.conv_general_dilated(
      x, kernel, (stride,), padding, dimension_numbers=("NWC", "WIO", "NWC"))


def conv_transpose1d(x, kernel, stride=1, padding="SAME"):
  return jax.lax.conv_transpose(
      x, kernel, (stride,), padding, dimension_numbers=("NWC", "WIO", "NWC"))


class Conv1D(nn.Module):
  features: int
  kernel_size: int
  stride: int = 1
  padding: str = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init,
                        (self.kernel_size, x.shape[-1], self.features))
    y = conv1d(x, kernel.astype(x.dtype), self.stride, self.padding)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,))
    return y


class ConvTranspose1D(nn.Module):
  features: int
  kernel_size: int
  stride: int = 1
  padding: str = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init,
                        (self.kernel_size, x.shape[-1], self.features))
    y = conv_transpose1d(x, kernel.astype(x.dtype), self.stride, self.padding)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,))
    return y
