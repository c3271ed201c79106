"""What a stage writes to TensorBoard besides scalars: audio and images.

A stage's summary_fn returns {'audio', 'images', 'sample_rate'} (see
loop.run_stage); `write_summaries` writes it under `<stage>/samples/`, and
`spectrogram_images` turns audio into the log-magnitude images it shows.
"""

import jax
import numpy as np

from wavegan_jax import spectral


def write_summaries(writer, name: str, step: int, summaries: dict) -> None:
  """Writes summary_fn's {'audio', 'images', 'sample_rate'} output."""
  audios = summaries.get("audio") or {}
  images = summaries.get("images") or {}
  if audios:
    writer.write_audios(
        step, {f"{name}/samples/{key}": np.asarray(value)
               for key, value in audios.items()},
        sample_rate=int(summaries["sample_rate"]))
  if images:
    writer.write_images(
        step, {f"{name}/samples/{key}": np.asarray(value)
               for key, value in images.items()})


def spectrogram_images(audio: jax.Array, n_fft: int = 256,
                       hop_length: int = 64) -> np.ndarray:
  """Log-magnitude spectrograms as [N, freq, time, 1] images in [0, 1]."""
  magnitude = spectral.magnitude(
      spectral.stft(audio, n_fft, hop_length), 1e-7)
  log_magnitude = np.log(np.asarray(magnitude) + 1e-5)
  image = np.flip(np.transpose(log_magnitude, (0, 2, 1)), axis=1)
  low, high = image.max() - 8.0, image.max()  # An 80 dB-ish window.
  return ((np.clip(image, low, high) - low) / (high - low))[..., None]
