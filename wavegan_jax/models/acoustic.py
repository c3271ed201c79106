"""Stage 1: the acoustic model (audio -> per-frame context + pooled style).

A front end turns the waveform [B, N] into frame features [B, T, F] with
T = N // hop_length, one frame per video frame at the default sizes
(8192 samples, hop 256 -> 32 frames):

* 'logmel': a normalised log-mel spectrogram computed in JAX
  (`wavegan_jax.spectral`), nothing to learn;
* 'conv': a stack of strided `Conv1D` layers over the waveform (LeakyReLU),
  whose strides multiply to hop_length.

A bidirectional LSTM encoder maps the features to a per-frame `context`
[B, T, Dc] and a `style` [B, Ds] (the time average of a projection of the
encoder states: what stays constant over the utterance, e.g. the speaker).
An LSTM decoder reconstructs the *normalised log-mel* [B, T, num_mels] from
context + broadcast style.

Reconstruction target and collapse: the target returned as `target` is the
normalised log-mel under `stop_gradient` for both front ends. For 'logmel' it
equals `features` (a constant of the data). For 'conv' the learned features
are NOT the target: reconstructing learned features would let the encoder
and decoder agree on constant features (zero loss, no information), whereas a
fixed log-mel target forces the conv features to carry the spectral content.
The stage-1 loss is therefore `mean((reconstruction - target) ** 2)` plus
whatever latent penalty the config adds.

Parameter counts (see `count_params`), 8192 samples:
  default (logmel, lstm 128, context 64, style 64, 1 layer): 510,144;
  the same with the 'conv' front end, channels (32, 64, 128, 128): 1,242,432.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wavegan_jax import spectral
from wavegan_jax.models import conv
from wavegan_jax.models import lstm

FRONTENDS = ("logmel", "conv")


def count_params(params) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


class AcousticModel(nn.Module):
  """LSTM autoencoder over audio frames.

  Attributes:
    frontend: 'logmel' or 'conv' (see the module docstring).
    sample_rate: audio sample rate in Hz.
    hop_length: samples per frame (the audio length must be a multiple).
    n_fft: FFT size of the log-mel (front end and target).
    num_mels: mel bands.
    logmel_mean, logmel_std: fixed normalisation (x - mean) / std of the
      natural-log mel magnitudes (FSDD clips padded to 8192 samples have
      mean -8.2, std 3.6; speech frames -5.0 +- 2.1).
    conv_channels: output channels of each conv front-end layer.
    conv_strides: stride of each conv layer; their product must equal
      hop_length.
    conv_kernel: conv kernel length (WaveGAN's 25).
    lstm_features: hidden size of each LSTM direction.
    context_features: Dc, width of the per-frame context.
    style_features: Ds, width of the pooled style.
    num_lstm_layers: LSTM layers in the encoder and in the decoder.
  """
  frontend: str = "logmel"
  sample_rate: int = 8000
  hop_length: int = 256
  n_fft: int = 1024
  num_mels: int = 64
  logmel_mean: float = -7.0
  logmel_std: float = 4.0
  conv_channels: Sequence[int] = (32, 64, 128, 128)
  conv_strides: Sequence[int] = (4, 4, 4, 4)
  conv_kernel: int = 25
  lstm_features: int = 128
  context_features: int = 64
  style_features: int = 64
  num_lstm_layers: int = 1

  def setup(self):
    if self.frontend not in FRONTENDS:
      raise ValueError(
          f"frontend must be one of {FRONTENDS}, got {self.frontend!r}")
    if self.frontend == "conv":
      if len(self.conv_channels) != len(self.conv_strides):
        raise ValueError(
            f"conv_channels {tuple(self.conv_channels)} and conv_strides "
            f"{tuple(self.conv_strides)} must have the same length")
      if int(np.prod(self.conv_strides)) != self.hop_length:
        raise ValueError(
            f"the conv strides {tuple(self.conv_strides)} multiply to "
            f"{int(np.prod(self.conv_strides))}, not hop_length="
            f"{self.hop_length}")
      self.conv_layers = [
          conv.Conv1D(channels, self.conv_kernel, stride)
          for channels, stride in zip(self.conv_channels, self.conv_strides)
      ]
    self.encoder_lstm = lstm.StackedLSTM(
        self.lstm_features, self.num_lstm_layers, bidirectional=True)
    self.context_projection = nn.Dense(self.context_features)
    self.style_projection = nn.Dense(self.style_features)
    self.decoder_lstm = lstm.StackedLSTM(
        self.lstm_features, self.num_lstm_layers, bidirectional=True)
    self.output_projection = nn.Dense(self.num_mels)

  def _check_audio(self, audio: jax.Array):
    if audio.ndim != 2:
      raise ValueError(
          f"AcousticModel expects audio [batch, samples], got {audio.shape}")
    if audio.shape[1] % self.hop_length:
      raise ValueError(
          f"audio length {audio.shape[1]} is not a multiple of hop_length="
          f"{self.hop_length}")

  def log_mel(self, audio: jax.Array) -> jax.Array:
    """Normalised log-mel, [B, N] -> [B, N // hop_length, num_mels]."""
    self._check_audio(audio)
    mels = spectral.log_mel_spectrogram(
        audio.astype(jnp.float32), self.sample_rate, self.n_fft,
        self.hop_length, self.num_mels, drop_last=True)
    return (mels - self.logmel_mean) / self.logmel_std

  def features(self, audio: jax.Array) -> jax.Array:
    """Front-end features, [B, N] -> [B, N // hop_length, F]."""
    if self.frontend == "logmel":
      return self.log_mel(audio)
    self._check_audio(audio)
    x = audio[..., None]
    for layer in self.conv_layers:
      x = nn.leaky_relu(layer(x), 0.2)
    return x

  def _encode_features(self, features: jax.Array):
    hidden = self.encoder_lstm(features)
    context = self.context_projection(hidden)
    style = jnp.mean(self.style_projection(hidden), axis=1)
    return context, style

  def encode(self, audio: jax.Array, train: bool = False):
    """Encodes audio; call with `model.apply(params, audio, method=...)`.

    Args:
      audio: [B, N] float waveform, N a multiple of hop_length.
      train: unused (no dropout); kept for a uniform signature.

    Returns:
      (context [B, T, context_features], style [B, style_features]),
      T = N // hop_length.
    """
    del train
    return self._encode_features(self.features(audio))

  def decode(self, context: jax.Array, style: jax.Array) -> jax.Array:
    """Reconstructs the normalised log-mel [B, T, num_mels] from the codes."""
    style_sequence = jnp.broadcast_to(
        style[:, None, :], context.shape[:2] + style.shape[-1:])
    hidden = self.decoder_lstm(
        jnp.concatenate([context, style_sequence], axis=-1))
    return self.output_projection(hidden)

  def __call__(self, audio: jax.Array, train: bool = False) -> dict:
    """Runs the autoencoder.

    Args:
      audio: [B, N] float waveform in [-1, 1], N a multiple of hop_length.
      train: unused (no dropout); kept for a uniform signature.

    Returns:
      dict with `features` [B, T, F] (F = num_mels or conv_channels[-1]),
      `context` [B, T, Dc], `style` [B, Ds], `reconstruction` [B, T,
      num_mels] and `target` [B, T, num_mels] (stop-gradient normalised
      log-mel, the reconstruction target).
    """
    del train
    features = self.features(audio)
    if self.frontend == "logmel":
      target = features
    else:
      target = self.log_mel(audio)
    context, style = self._encode_features(features)
    return dict(features=features, context=context, style=style,
                reconstruction=self.decode(context, style),
                target=jax.lax.stop_gradient(target))
