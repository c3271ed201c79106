"""Transformer pieces for the generator's fusion stage.

* `MultiHeadAttention`: scaled dot-product attention with per-head query, key
  and value projections, an optional additive logit bias and boolean mask.
* `sinusoidal_position_encoding`: Vaswani et al.'s absolute encoding.
* `RelativePositionBias`: a learned scalar per head for every clipped offset
  j - i (Shaw et al.'s clipping, T5's scalar-bias form), so the position part
  of the attention logits depends only on the offset.
* `TransformerBlock`: pre-LayerNorm self-attention, optional cross-attention
  to a context sequence, and an MLP, each residual.

All modules work on batch-first [B, T, F] sequences.
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

POSITIONS = ("absolute", "relative", "none")


def sinusoidal_position_encoding(length: int, features: int) -> np.ndarray:
  """Absolute sinusoidal position encoding (Vaswani et al., 2017).

  pe[p, 2i] = sin(p / 10000^(2i / features)),
  pe[p, 2i + 1] = cos(p / 10000^(2i / features)).

  Args:
    length: number of positions.
    features: encoding width (odd widths drop the last cosine).

  Returns:
    float32 NumPy array [length, features] (a constant under jit).
  """
  positions = np.arange(length, dtype=np.float64)[:, None]
  even = np.arange(0, features, 2, dtype=np.float64)
  angles = positions / np.power(10000.0, even / features)[None, :]
  encoding = np.zeros((length, features), dtype=np.float64)
  encoding[:, 0::2] = np.sin(angles)
  encoding[:, 1::2] = np.cos(angles)[:, :features // 2]
  return encoding.astype(np.float32)


def relative_offsets(query_length: int, key_length: int,
                     max_distance: int) -> np.ndarray:
  """Clipped offsets j - i, shifted to [0, 2 * max_distance] for a lookup.

  Args:
    query_length: number of query positions i.
    key_length: number of key positions j.
    max_distance: offsets beyond +-max_distance share one embedding.

  Returns:
    int32 [query_length, key_length] indices clip(j - i) + max_distance.
  """
  offsets = (np.arange(key_length)[None, :] - np.arange(query_length)[:, None])
  return (np.clip(offsets, -max_distance, max_distance)
          + max_distance).astype(np.int32)


class RelativePositionBias(nn.Module):
  """Learned per-head logit bias for each clipped relative offset j - i.

  Attributes:
    num_heads: number of attention heads.
    max_distance: offsets are clipped to [-max_distance, max_distance].

  Input: query and key lengths. Output: [num_heads, Tq, Tk] additive bias,
  Toeplitz in (i, j) for every head.
  """
  num_heads: int
  max_distance: int = 32

  @nn.compact
  def __call__(self, query_length: int, key_length: int) -> jax.Array:
    """Returns the [num_heads, query_length, key_length] bias."""
    table = self.param("embedding", nn.initializers.normal(0.02),
                       (2 * self.max_distance + 1, self.num_heads))
    index = relative_offsets(query_length, key_length, self.max_distance)
    return jnp.transpose(table[index], (2, 0, 1))


class MultiHeadAttention(nn.Module):
  """Multi-head scaled dot-product attention.

  Attributes:
    num_heads: number of heads H.
    head_features: width per head D (default: input width / H).
    out_features: output width (default: the query input width).
    dropout_rate: dropout on the attention weights (train only).
    out_kernel_init: initialiser of the output projection's kernel (zeros
      makes a residual branch start as nothing).

  Inputs: queries [B, Tq, F], keys/values [B, Tk, Fkv]. Output [B, Tq, Fout].
  Params: `query`, `key`, `value` kernels [F, H, D] and biases [H, D];
  `out` kernel [H, D, Fout] and bias [Fout].
  """
  num_heads: int
  head_features: Optional[int] = None
  out_features: Optional[int] = None
  dropout_rate: float = 0.0
  out_kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init

  @nn.compact
  def __call__(self,
               inputs_q: jax.Array,
               inputs_kv: Optional[jax.Array] = None,
               bias: Optional[jax.Array] = None,
               mask: Optional[jax.Array] = None,
               train: bool = False) -> jax.Array:
    """Attends from `inputs_q` to `inputs_kv` (self-attention when None).

    Args:
      inputs_q: [B, Tq, F] queries.
      inputs_kv: [B, Tk, Fkv] keys and values; defaults to `inputs_q`.
      bias: additive logit bias broadcastable to [B, H, Tq, Tk].
      mask: boolean, broadcastable to [B, H, Tq, Tk]; False hides a key.
      train: apply attention dropout (needs the 'dropout' rng).

    Returns:
      [B, Tq, out_features or F].
    """
    inputs_kv = inputs_q if inputs_kv is None else inputs_kv
    features = inputs_q.shape[-1]
    head_features = self.head_features
    if head_features is None:
      if features % self.num_heads:
        raise ValueError(
            f"input width {features} is not divisible by num_heads="
            f"{self.num_heads}; set head_features explicitly")
      head_features = features // self.num_heads
    projection = lambda name: nn.DenseGeneral(
        (self.num_heads, head_features), axis=-1, name=name)
    query = projection("query")(inputs_q)  # [B, Tq, H, D]
    key = projection("key")(inputs_kv)  # [B, Tk, H, D]
    value = projection("value")(inputs_kv)  # [B, Tk, H, D]
    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key) / np.sqrt(head_features)
    if bias is not None:
      logits = logits + bias
    if mask is not None:
      logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    weights = jax.nn.softmax(logits, axis=-1)
    if train and self.dropout_rate > 0:
      weights = nn.Dropout(self.dropout_rate)(weights, deterministic=False)
    attended = jnp.einsum("bhqk,bkhd->bqhd", weights, value)
    return nn.DenseGeneral(self.out_features or features, axis=(-2, -1),
                           kernel_init=self.out_kernel_init,
                           name="out")(attended)


class TransformerBlock(nn.Module):
  """Pre-LayerNorm Transformer block: self-attention, [cross-attention], MLP.

  x = x + Dropout(Attention(LN(x) [+ position encoding]))
  x = x + Dropout(Attention(LN(x), LN(context)))    (when given a context)
  x = x + Dropout(MLP(LN(x)))

  Attributes:
    num_heads: attention heads (the width F must be divisible by it).
    mlp_dim: hidden width of the GELU MLP.
    position: 'absolute' adds the sinusoidal encoding to the attention input
      (not to the residual stream); 'relative' adds a learned
      `RelativePositionBias` to the logits; 'none' uses no positions.
    dropout: dropout rate on attention weights and both residual branches.
    max_relative_distance: clipping distance for 'relative'.
    zero_init_residual: start every residual branch's output projection at
      zero, so that the block is the identity at initialisation (ReZero's
      and Fixup's idea: the block can only add to what precedes it).

  Input [B, T, F] (and an optional context [B, Tc, Fc]); output [B, T, F].
  """
  num_heads: int
  mlp_dim: int
  position: str = "relative"
  dropout: float = 0.0
  max_relative_distance: int = 32
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, inputs: jax.Array, mask: Optional[jax.Array] = None,
               train: bool = False,
               context: Optional[jax.Array] = None) -> jax.Array:
    """Applies the block.

    Args:
      inputs: [B, T, F] sequence.
      mask: optional boolean attention mask broadcastable to [B, H, T, T]
        (e.g. a [B, 1, 1, T] key-padding mask); False hides a key.
      train: enable dropout (needs the 'dropout' rng when dropout > 0).
      context: optional [B, Tc, Fc] sequence the positions also attend to
        (keys and values; no position terms: its positions are unrelated to
        the input's). `mask` applies to the self-attention only.

    Returns:
      [B, T, F].
    """
    if self.position not in POSITIONS:
      raise ValueError(
          f"position must be one of {POSITIONS}, got {self.position!r}")
    length, features = inputs.shape[-2:]
    out_init = (nn.initializers.zeros if self.zero_init_residual
                else nn.linear.default_kernel_init)
    hidden = nn.LayerNorm(name="attention_norm")(inputs)
    bias = None
    if self.position == "absolute":
      hidden = hidden + sinusoidal_position_encoding(length, features).astype(
          hidden.dtype)
    elif self.position == "relative":
      bias = RelativePositionBias(self.num_heads, self.max_relative_distance,
                                  name="relative_bias")(length, length)
    hidden = MultiHeadAttention(self.num_heads, dropout_rate=self.dropout,
                                out_kernel_init=out_init,
                                name="attention")(
                                    hidden, bias=bias, mask=mask, train=train)
    x = inputs + nn.Dropout(self.dropout)(hidden, deterministic=not train)
    if context is not None:
      if context.ndim != 3 or context.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"context must be [batch={inputs.shape[0]}, length, features], "
            f"got shape {context.shape}")
      hidden = MultiHeadAttention(
          self.num_heads, dropout_rate=self.dropout, out_kernel_init=out_init,
          name="cross_attention")(
              nn.LayerNorm(name="cross_attention_norm")(x),
              nn.LayerNorm(name="context_norm")(context), train=train)
      x = x + nn.Dropout(self.dropout)(hidden, deterministic=not train)
    hidden = nn.LayerNorm(name="mlp_norm")(x)
    hidden = nn.gelu(nn.Dense(self.mlp_dim, name="mlp_in")(hidden))
    hidden = nn.Dense(features, kernel_init=out_init, name="mlp_out")(hidden)
    return x + nn.Dropout(self.dropout)(hidden, deterministic=not train)
