"""The evaluation judge: a log-mel CNN that recognises digit and speaker.

Trained on real FSDD training takes, it scores generated audio (digit and
speaker accuracy, inception score) and provides the embedding whose
statistics give the Frechet audio distance (FAD).

Architecture (a small VGG-style spectrogram classifier):
  audio [B, N] -> log-mel [B, T, num_mels] (`wavegan_jax.spectral`), then
  per-clip standardisation (zero mean, unit variance over the whole
  spectrogram: the judge ignores the overall gain, so a quiet but correct
  generated clip is not penalised) -> for each entry of `channels`: two
  3x3 conv + ReLU, then 2x2 max pooling -> global mean and max pooling over
  time and frequency (any clip length) -> dropout -> dense `embedding`
  (ReLU; the penultimate layer, used for FAD) -> dropout -> two linear heads.

No batch norm: the model has only a 'params' collection and behaves the same
at any batch size; `train=True` only enables dropout (and then needs the
'dropout' rng).

Parameter count (see `count_params`) at the defaults (channels (32, 64, 128),
embedding 128): 321,392.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from wavegan_jax import spectral


def count_params(params) -> int:
  """Total number of scalars in a parameter pytree."""
  return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


class AudioJudge(nn.Module):
  """Digit and speaker classifier over log-mel spectrograms.

  Attributes:
    num_digits: digit classes.
    num_speakers: speaker classes.
    sample_rate: audio sample rate in Hz.
    n_fft: FFT size of the log-mel.
    hop_length: log-mel hop in samples.
    num_mels: mel bands.
    channels: conv channels per level (each level halves time and frequency).
    embedding_features: E, width of the embedding layer.
    dropout: dropout rate before and after the embedding (train only).
    standardize: standardise each clip's log-mel (gain invariance).
  """
  num_digits: int = 10
  num_speakers: int = 6
  sample_rate: int = 8000
  n_fft: int = 512
  hop_length: int = 128
  num_mels: int = 64
  channels: Sequence[int] = (32, 64, 128)
  embedding_features: int = 128
  dropout: float = 0.3
  standardize: bool = True

  def log_mel(self, audio: jax.Array) -> jax.Array:
    """The (standardised) log-mel input, [B, N] -> [B, frames, num_mels]."""
    if audio.ndim != 2:
      raise ValueError(
          f"AudioJudge expects audio [batch, samples], got shape {audio.shape}")
    mels = spectral.log_mel_spectrogram(
        audio.astype(jnp.float32), self.sample_rate, self.n_fft,
        self.hop_length, self.num_mels)
    if self.standardize:
      mean = jnp.mean(mels, axis=(1, 2), keepdims=True)
      std = jnp.std(mels, axis=(1, 2), keepdims=True)
      mels = (mels - mean) / (std + 1e-3)
    return mels

  @nn.compact
  def __call__(self, audio: jax.Array, train: bool = False) -> dict:
    """Classifies audio clips.

    Args:
      audio: [B, N] float waveform in [-1, 1] (N > n_fft // 2).
      train: enable dropout (needs the 'dropout' rng).

    Returns:
      dict with `digit_logits` [B, num_digits], `speaker_logits`
      [B, num_speakers] and `embedding` [B, embedding_features] (float32).
    """
    x = self.log_mel(audio)[..., None]
    min_size = 2 ** len(self.channels)
    if min(x.shape[1:3]) < min_size:
      raise ValueError(
          f"AudioJudge needs at least {min_size} frames and mel bands for "
          f"{len(self.channels)} pooling levels; the log-mel is "
          f"{x.shape[1]} frames x {x.shape[2]} bands")
    for level, features in enumerate(self.channels):
      for index in range(2):
        x = nn.relu(nn.Conv(features, (3, 3),
                            name=f"conv_{level}_{index}")(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = jnp.concatenate([jnp.mean(x, axis=(1, 2)), jnp.max(x, axis=(1, 2))],
                        axis=-1)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    embedding = nn.relu(nn.Dense(self.embedding_features,
                                 name="embedding")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(embedding)
    return dict(
        digit_logits=nn.Dense(self.num_digits, name="digit_head")(x),
        speaker_logits=nn.Dense(self.num_speakers, name="speaker_head")(x),
        embedding=embedding)
