"""Stage 3: the audio-visual generator (contexts -> waveform).

Fusion (`AVGenerator.fuse`): the reference recording is a different utterance
from the one in the video, so its acoustic context is not time-aligned with
the video; it is summarised by its time average. That summary and the style
(and an optional noise vector z) are broadcast over the T video frames,
concatenated with the visual context [B, T, Dv] and run through a
bidirectional LSTM ('lstm'), optionally followed by a `TransformerBlock`
('lstm_transformer'). Result: a fused frame-rate sequence [B, T, D].

Decoders (samples_per_frame = num_samples / num_frames):
* 'conv': WaveGAN's upsampling stack. A dense layer to decoder_channels at
  frame rate, then log_4(samples_per_frame) `ConvTranspose1D` layers
  (stride 4, kernel kernel_len, ReLU), halving the channels each layer; the
  last goes to 1 channel + tanh. The output length is exactly
  num_frames * 4 ** layers = num_samples.
  With `decoder_activation='snake'` every ReLU of the stack is BigVGAN's
  Snake, x + sin^2(alpha x) / alpha with a learned alpha per channel: a
  periodic bias towards harmonic waveforms.
* 'lstm': an LSTM at frame rate whose dense output emits one hop of
  samples_per_frame samples per frame (tanh), concatenated in time.
* 'harmonic': the fused sequence, upsampled 4x by a transposed conv to a
  control rate, drives a harmonic-plus-noise synthesizer (`synth.py`): f0,
  loudness and a distribution over harmonics, and the gains of fixed noise
  bands. Harmonics exist from the first step, so the reconstruction and
  adversarial terms shape formants instead of first having to invent
  periodicity (the 'conv' decoder's output was broadband noise after 6000
  steps here; docs/experiment_log.md).

Parameter counts (see `count_params`) at the suggested 2-core CPU defaults
(8192 samples, 32 frames, Dv = Dc = Ds = 64, LSTM 128 per direction,
decoder_channels 256, kernel 25):
  fusion='lstm', decoder='conv': 1,470,721;
  fusion='lstm_transformer' (4 heads, mlp 1024): 2,261,253;
  fusion='lstm', decoder='lstm': 558,848.
"""

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wavegan_jax.models import activations
from wavegan_jax.models import conv
from wavegan_jax.models import lstm
from wavegan_jax.models import synth
from wavegan_jax.models import transformer

FUSIONS = ("lstm", "lstm_transformer")
DECODERS = ("conv", "lstm", "harmonic")


def count_params(params) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


def num_upsample_layers(num_samples: int, num_frames: int, stride: int) -> int:
  """How many stride-`stride` layers take num_frames steps to num_samples.

  Args:
    num_samples: output waveform length.
    num_frames: input (video) frames.
    stride: upsampling factor per layer.

  Returns:
    k >= 0 with num_frames * stride ** k == num_samples.

  Raises:
    ValueError: when num_samples / num_frames is not a power of `stride`.
  """
  if num_frames <= 0 or num_samples % num_frames:
    raise ValueError(
        f"num_samples={num_samples} is not a multiple of num_frames="
        f"{num_frames}")
  ratio = num_samples // num_frames
  layers = round(math.log(ratio, stride)) if ratio > 1 else 0
  if stride ** layers != ratio:
    raise ValueError(
        f"num_samples / num_frames = {num_samples} / {num_frames} = {ratio} "
        f"is not a power of the upsampling stride {stride}; the conv decoder "
        f"needs num_samples = num_frames * {stride} ** k")
  return layers


class Fusion(nn.Module):
  """Fuses visual context, reference summary, style and noise at frame rate.

  Attributes: see `AVGenerator` (same names).

  Inputs: visual_context [B, T, Dv], acoustic_context [B, Ta, Da],
  acoustic_style [B, Ds], z [B, noise_features] or None.
  Output: [B, T, 2 * lstm_features].
  """
  num_frames: int
  fusion: str = "lstm"
  lstm_features: int = 128
  num_heads: int = 4
  mlp_dim: Optional[int] = None
  position: str = "relative"
  transformer_dropout: float = 0.0
  noise_features: int = 0
  transformer_zero_init: bool = False
  reference_attention: bool = False

  @nn.compact
  def __call__(self, visual_context, acoustic_context, acoustic_style,
               z=None, train=False):
    if self.fusion not in FUSIONS:
      raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
    if self.fusion != "lstm_transformer" and (self.transformer_zero_init or
                                             self.reference_attention):
      raise ValueError(
          f"transformer_zero_init and reference_attention need "
          f"fusion='lstm_transformer', got fusion={self.fusion!r}")
    if visual_context.ndim != 3 or visual_context.shape[1] != self.num_frames:
      raise ValueError(
          f"visual_context must be [batch, num_frames={self.num_frames}, "
          f"features], got shape {visual_context.shape}")
    batch, frames = visual_context.shape[:2]
    # The reference is another utterance: only its time average is used.
    conditions = [acoustic_style, jnp.mean(acoustic_context, axis=1)]
    if self.noise_features:
      if z is None:
        z = jax.random.normal(self.make_rng("noise"),
                              (batch, self.noise_features))
      if z.shape != (batch, self.noise_features):
        raise ValueError(
            f"z must be [batch, noise_features] = "
            f"{(batch, self.noise_features)}, got shape {z.shape}")
      conditions.append(z)
    condition = jnp.concatenate(conditions, axis=-1)
    condition = jnp.broadcast_to(condition[:, None, :],
                                 (batch, frames, condition.shape[-1]))
    fused = lstm.LSTM(self.lstm_features, bidirectional=True, name="lstm")(
        jnp.concatenate([visual_context, condition], -1))
    if self.fusion == "lstm_transformer":
      fused = transformer.TransformerBlock(
          self.num_heads, self.mlp_dim or 4 * fused.shape[-1],
          position=self.position, dropout=self.transformer_dropout,
          zero_init_residual=self.transformer_zero_init,
          name="transformer")(
              fused, train=train,
              context=acoustic_context if self.reference_attention else None)
      # The pre-norm block's residual stream is not normalised: without this
      # final norm it reached ~80x the LSTM's scale in training (run 35)
      # and the decoder trailed the LSTM fusion's loss throughout.
      fused = nn.LayerNorm(name="transformer_output_norm")(fused)
    return fused


class ConvDecoder(nn.Module):
  """WaveGAN-style transposed-conv upsampler, [B, T, D] -> [B, T * ratio].

  Attributes: num_samples, num_frames, decoder_channels, kernel_len,
  upsample_stride as in `AVGenerator`. Output in (-1, 1) (tanh).
  """
  num_samples: int
  num_frames: int
  decoder_channels: int = 256
  kernel_len: int = 25
  upsample_stride: int = 4
  conv_impl: str = "fast"
  compute_dtype: str = "float32"
  activation: str = "relu"

  @nn.compact
  def __call__(self, fused):
    layers = num_upsample_layers(self.num_samples, self.num_frames,
                                 self.upsample_stride)
    dtype = conv.compute_dtype(self.compute_dtype)
    x = activations.activation(self.activation, "input")(nn.Dense(
        self.decoder_channels, dtype=dtype, name="input")(fused.astype(dtype)))
    if layers == 0:
      x = nn.Dense(1, dtype=dtype, name="output")(x)
    for layer in range(layers):
      last = layer == layers - 1
      channels = 1 if last else max(
          self.decoder_channels // 2 ** (layer + 1), 1)
      x = conv.ConvTranspose1D(channels, self.kernel_len, self.upsample_stride,
                               impl=self.conv_impl,
                               name=f"upsample_{layer}")(x)
      if not last:
        x = activations.activation(self.activation, str(layer))(x)
    return jnp.tanh(x[..., 0]).astype(jnp.float32)


class LSTMDecoder(nn.Module):
  """Frame-rate LSTM emitting one hop of samples per frame.

  [B, T, D] -> [B, num_samples]: an LSTM, a dense layer to samples_per_frame
  = num_samples / T outputs per frame, tanh, frames concatenated in time.
  """
  num_samples: int
  lstm_features: int = 128

  @nn.compact
  def __call__(self, fused):
    batch, frames = fused.shape[:2]
    hidden = lstm.LSTM(self.lstm_features, name="lstm")(fused)
    chunks = nn.Dense(self.num_samples // frames, name="output")(hidden)
    return jnp.tanh(chunks).reshape(batch, self.num_samples)


class HarmonicDecoder(nn.Module):
  """Harmonic-plus-noise synthesizer driven at 4x the frame rate.

  (At the frame rate itself when a frame has fewer than 4 samples or not a
  multiple of 4.)

  [B, T, D] -> [B, num_samples]. Controls per control frame: f0 in
  [f0_min, f0_max] Hz (log scale), loudness (exp_sigmoid), a softmax over
  num_harmonics harmonics renormalised over the audible ones, and
  num_noise_bands band gains (exp_sigmoid, starting quiet). The noise is one
  fixed white-noise realisation split into bands (no rng needed; the gains
  shape it).
  """
  num_samples: int
  sample_rate: int
  channels: int = 256
  num_harmonics: int = 60
  num_noise_bands: int = 32
  control_upsample: int = 4
  f0_min: float = 50.0
  f0_max: float = 500.0

  @nn.compact
  def __call__(self, fused):
    x = nn.relu(nn.Dense(self.channels, name="input")(fused))
    samples_per_frame = self.num_samples // fused.shape[1]
    if samples_per_frame % self.control_upsample == 0:
      x = nn.relu(conv.ConvTranspose1D(
          self.channels, 2 * self.control_upsample, self.control_upsample,
          name="upsample")(x))
    x = nn.relu(conv.Conv1D(self.channels, 5, name="control_conv")(x))
    f0_unit = jax.nn.sigmoid(nn.Dense(1, name="f0")(x)[..., 0])
    f0 = self.f0_min * (self.f0_max / self.f0_min) ** f0_unit
    loudness = synth.exp_sigmoid(nn.Dense(1, name="loudness")(x))
    distribution = nn.Dense(self.num_harmonics, name="harmonics")(x)
    noise_gains = synth.exp_sigmoid(nn.Dense(
        self.num_noise_bands, name="noise",
        bias_init=nn.initializers.constant(-5.0))(x))
    # Only audible harmonics share the loudness.
    ratios = jnp.arange(1, self.num_harmonics + 1, dtype=f0.dtype)
    audible = f0[..., None] * ratios < self.sample_rate / 2
    distribution = jnp.where(audible, jax.nn.softmax(
        jnp.where(audible, distribution, -1e9), axis=-1), 0.0)
    per_sample = synth.upsample_controls(
        jnp.concatenate([f0[..., None], loudness * distribution,
                         noise_gains], axis=-1), self.num_samples)
    harmonic = synth.harmonic_synth(
        per_sample[..., 0], per_sample[..., 1:1 + self.num_harmonics],
        self.sample_rate)
    bank = synth.band_noise_bank(self.num_samples, self.num_noise_bands)
    noise = jnp.sum(per_sample[..., 1 + self.num_harmonics:] * bank, -1)
    return harmonic + noise


class AVGenerator(nn.Module):
  """Generates a waveform from visual context, reference context and style.

  Attributes:
    num_samples: output length N.
    num_frames: video frames T (N / T samples per frame).
    fusion: 'lstm' or 'lstm_transformer'.
    lstm_features: hidden size per direction of the fusion LSTM (and of the
      'lstm' decoder).
    num_heads: attention heads ('lstm_transformer'; 2 * lstm_features must
      be divisible by it).
    mlp_dim: Transformer MLP width (default 4 * fused width).
    position: Transformer position encoding, 'absolute' | 'relative' | 'none'.
    transformer_dropout: Transformer dropout rate (train only).
    transformer_zero_init: the Transformer block starts as the identity
      (its residual branches' output projections at zero).
    reference_attention: the Transformer block also attends from each video
      frame to the reference's context sequence (keys and values), besides
      the reference's time average that every fusion gets.
    decoder: 'conv', 'lstm' or 'harmonic'.
    decoder_channels: channels at frame rate of the conv decoder (and the
      harmonic decoder's control network width).
    kernel_len: transposed-conv kernel length (WaveGAN's 25).
    upsample_stride: upsampling per conv layer (WaveGAN's 4).
    noise_features: width of z (0: deterministic generator).
    conv_impl: the conv decoder's transposed convolutions (conv.py's
      IMPLEMENTATIONS; 'fast' the measured default here).
    compute_dtype: 'float32' or 'bfloat16' (GPU / TPU): the conv decoder's
      activations and products (params stay float32; the fusion LSTM runs
      in float32). Other decoders take 'float32' only.
    decoder_activation: the conv decoder's nonlinearity, 'relu' or
      'snake' (see `Snake`).

  Params: `fusion/...` and `decoder/...`.
  """
  num_samples: int = 8192
  num_frames: int = 32
  fusion: str = "lstm"
  lstm_features: int = 128
  num_heads: int = 4
  mlp_dim: Optional[int] = None
  position: str = "relative"
  transformer_dropout: float = 0.0
  transformer_zero_init: bool = False
  reference_attention: bool = False
  decoder: str = "conv"
  decoder_channels: int = 256
  kernel_len: int = 25
  upsample_stride: int = 4
  noise_features: int = 0
  sample_rate: int = 8000
  num_harmonics: int = 60
  num_noise_bands: int = 32
  conv_impl: str = "fast"
  compute_dtype: str = "float32"
  decoder_activation: str = "relu"

  def setup(self):
    if self.decoder not in DECODERS:
      raise ValueError(
          f"decoder must be one of {DECODERS}, got {self.decoder!r}")
    activations.check_activation(self.decoder_activation,
                                 "decoder_activation")
    if self.decoder_activation != "relu" and self.decoder != "conv":
      raise ValueError(
          f"decoder_activation={self.decoder_activation!r} is implemented "
          f"for decoder='conv' only, got decoder={self.decoder!r}; set "
          f"decoder_activation='relu' with it")
    conv.compute_dtype(self.compute_dtype)  # Validates the name.
    if self.compute_dtype != "float32" and self.decoder != "conv":
      raise ValueError(
          f"compute_dtype={self.compute_dtype!r} is implemented for "
          f"decoder='conv' only, got decoder={self.decoder!r}")
    if self.num_frames <= 0 or self.num_samples % self.num_frames:
      raise ValueError(
          f"num_samples={self.num_samples} is not a multiple of num_frames="
          f"{self.num_frames}")
    self.fusion_module = Fusion(
        self.num_frames, self.fusion, self.lstm_features, self.num_heads,
        self.mlp_dim, self.position, self.transformer_dropout,
        self.noise_features, self.transformer_zero_init,
        self.reference_attention, name="fusion")
    if self.decoder == "conv":
      self.decoder_module = ConvDecoder(
          self.num_samples, self.num_frames, self.decoder_channels,
          self.kernel_len, self.upsample_stride, self.conv_impl,
          self.compute_dtype, self.decoder_activation, name="decoder")
    elif self.decoder == "harmonic":
      self.decoder_module = HarmonicDecoder(
          self.num_samples, self.sample_rate, self.decoder_channels,
          self.num_harmonics, self.num_noise_bands, name="decoder")
    else:
      self.decoder_module = LSTMDecoder(self.num_samples, self.lstm_features,
                                        name="decoder")

  def fuse(self, visual_context: jax.Array, acoustic_context: jax.Array,
           acoustic_style: jax.Array, z: Optional[jax.Array] = None,
           train: bool = False) -> jax.Array:
    """Fuses the conditions at frame rate.

    Args:
      visual_context: [B, T, Dv] with T = num_frames.
      acoustic_context: [B, Ta, Da] context of the reference (any Ta).
      acoustic_style: [B, Ds] style of the reference.
      z: [B, noise_features] noise; drawn from the 'noise' rng (standard
        normal) when None and noise_features > 0.
      train: enable Transformer dropout (needs the 'dropout' rng).

    Returns:
      [B, T, 2 * lstm_features].
    """
    return self.fusion_module(visual_context, acoustic_context,
                              acoustic_style, z, train)

  def __call__(self, visual_context: jax.Array, acoustic_context: jax.Array,
               acoustic_style: jax.Array, z: Optional[jax.Array] = None,
               train: bool = False) -> jax.Array:
    """Generates the waveform.

    Args:
      visual_context: [B, T, Dv], T = num_frames.
      acoustic_context: [B, Ta, Da] reference context.
      acoustic_style: [B, Ds] reference style.
      z: optional [B, noise_features] noise (see `fuse`).
      train: enable dropout.

    Returns:
      float32 waveform [B, num_samples] in (-1, 1).
    """
    return self.decoder_module(
        self.fuse(visual_context, acoustic_context, acoustic_style, z, train))
