"""Spectral transforms in JAX: STFT, magnitudes, mel filter banks, log-mels.

Everything here is pure `jax.numpy`: jit-able and differentiable with respect
to the audio, so the same code serves the STFT losses, the spectral
discriminator and the acoustic model's log-mel front end.

Conventions (the same as librosa, transposed to time-major):
  * audio is [batch, samples] (a single [samples] signal is also accepted and
    keeps its lack of a batch axis in the output);
  * spectrograms are [batch, frames, n_fft // 2 + 1];
  * with `center=True` the signal is padded by n_fft // 2 on both sides
    (reflect padding by default, as librosa < 0.10 and PyTorch do), so frame t
    is centred on sample t * hop_length and there are
    1 + samples // hop_length frames.
"""

from typing import Optional

import jax.numpy as jnp
import numpy as np
import scipy.signal


def _window(window: str, win_length: int, n_fft: int) -> np.ndarray:
  """A periodic window of `win_length` taps centred in `n_fft` samples."""
  taps = scipy.signal.get_window(window, win_length, fftbins=True)
  left = (n_fft - win_length) // 2
  return np.pad(taps, (left, n_fft - win_length - left)).astype(np.float32)


def _frame(padded: jnp.ndarray, n_fft: int, hop_length: int,
           num_frames: int) -> jnp.ndarray:
  """Slices [B, L] into [B, num_frames, n_fft] overlapping frames."""
  if n_fft % hop_length == 0:
    # Reshape-and-shift framing: no gather, so its gradient is a plain sum
    # rather than a scatter (much faster on XLA:CPU).
    blocks_per_frame = n_fft // hop_length
    num_blocks = num_frames + blocks_per_frame - 1
    blocks = padded[:, :num_blocks * hop_length].reshape(
        padded.shape[0], num_blocks, hop_length)
    return jnp.concatenate(
        [blocks[:, k:k + num_frames] for k in range(blocks_per_frame)],
        axis=-1)
  starts = np.arange(num_frames)[:, None] * hop_length
  indices = starts + np.arange(n_fft)[None, :]
  return padded[:, indices]


def stft(audio: jnp.ndarray,
         n_fft: int,
         hop_length: int,
         win_length: Optional[int] = None,
         center: bool = True,
         window: str = "hann",
         pad_mode: str = "reflect") -> jnp.ndarray:
  """Short-time Fourier transform, equal to `librosa.stft(...).T`.

  Args:
    audio: [batch, samples] or [samples] real waveform.
    n_fft: FFT size (frame length).
    hop_length: samples between successive frames.
    win_length: window length (<= n_fft), zero-padded to n_fft in the centre;
      defaults to n_fft.
    center: pad n_fft // 2 samples on both sides so that frame t is centred
      on sample t * hop_length.
    window: any window name `scipy.signal.get_window` knows (periodic form).
    pad_mode: 'reflect' (default) or 'constant' (zeros; librosa >= 0.10's
      default), used when `center`.

  Returns:
    Complex [batch, frames, n_fft // 2 + 1] (or [frames, n_fft // 2 + 1] for
    a 1-D input), frames = 1 + (samples + 2 * (n_fft // 2) - n_fft) //
    hop_length when centred, else 1 + (samples - n_fft) // hop_length.

  Raises:
    ValueError: for a non-positive size, a window longer than n_fft, an
      unknown pad_mode or audio too short for one frame.
  """
  win_length = n_fft if win_length is None else win_length
  if n_fft <= 0 or hop_length <= 0 or not 0 < win_length <= n_fft:
    raise ValueError(
        f"stft needs n_fft > 0, hop_length > 0 and 0 < win_length <= n_fft; "
        f"got n_fft={n_fft}, hop_length={hop_length}, win_length={win_length}")
  if pad_mode not in ("reflect", "constant"):
    raise ValueError(
        f"stft pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
  audio = jnp.asarray(audio)
  unbatched = audio.ndim == 1
  if unbatched:
    audio = audio[None]
  if audio.ndim != 2:
    raise ValueError(
        f"stft expects audio [batch, samples] or [samples], got shape "
        f"{audio.shape}")
  if not jnp.issubdtype(audio.dtype, jnp.floating):
    audio = audio.astype(jnp.float32)
  num_samples = audio.shape[1]
  if center:
    pad = n_fft // 2
    if pad_mode == "reflect" and num_samples <= pad:
      raise ValueError(
          f"stft with center=True and reflect padding needs more than "
          f"n_fft // 2 = {pad} samples, got {num_samples}")
    audio = jnp.pad(audio, ((0, 0), (pad, pad)), mode=pad_mode)
  padded_length = audio.shape[1]
  if padded_length < n_fft:
    raise ValueError(
        f"stft needs at least n_fft = {n_fft} samples without centring, got "
        f"{num_samples}")
  num_frames = 1 + (padded_length - n_fft) // hop_length
  frames = _frame(audio, n_fft, hop_length, num_frames)
  taps = jnp.asarray(_window(window, win_length, n_fft), dtype=audio.dtype)
  spec = jnp.fft.rfft(frames * taps, n=n_fft, axis=-1)
  return spec[0] if unbatched else spec


def magnitude(spec: jnp.ndarray, eps: float = 1e-7) -> jnp.ndarray:
  """|spec|, floored at sqrt(eps) so its gradient is finite at zero.

  Args:
    spec: complex spectrogram of any shape.
    eps: floor on the power |spec|^2 (the gradient is zero below it).

  Returns:
    Real array shaped like `spec`: sqrt(max(re^2 + im^2, eps)).
  """
  power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
  return jnp.sqrt(jnp.maximum(power, eps))


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
  """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
  hz = np.asarray(hz, dtype=np.float64)
  linear_step = 200.0 / 3
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / linear_step
  log_step = np.log(6.4) / 27.0
  return np.where(
      hz >= min_log_hz,
      min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / log_step,
      hz / linear_step)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
  """The inverse of `_hz_to_mel`."""
  mel = np.asarray(mel, dtype=np.float64)
  linear_step = 200.0 / 3
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / linear_step
  log_step = np.log(6.4) / 27.0
  return np.where(mel >= min_log_mel,
                  min_log_hz * np.exp(log_step * (mel - min_log_mel)),
                  mel * linear_step)


def mel_filterbank(sample_rate: int,
                   n_fft: int,
                   num_mels: int,
                   fmin: float = 0.0,
                   fmax: Optional[float] = None) -> np.ndarray:
  """Triangular mel filters, equal to `librosa.filters.mel(...).T`.

  Slaney mel scale (htk=False) and Slaney area normalisation (norm='slaney'),
  librosa's defaults. Returned as a NumPy constant so that it folds into a
  jitted computation.

  Args:
    sample_rate: audio sample rate in Hz.
    n_fft: FFT size of the spectrogram it multiplies.
    num_mels: number of mel bands.
    fmin: lowest band edge in Hz.
    fmax: highest band edge in Hz; defaults to sample_rate / 2.

  Returns:
    float32 [n_fft // 2 + 1, num_mels]; `magnitudes @ filterbank` gives mels.

  Raises:
    ValueError: for a non-positive size or an empty / out-of-range band.
  """
  fmax = sample_rate / 2.0 if fmax is None else float(fmax)
  if sample_rate <= 0 or n_fft <= 0 or num_mels <= 0:
    raise ValueError(
        f"mel_filterbank needs positive sample_rate, n_fft and num_mels; got "
        f"{sample_rate}, {n_fft}, {num_mels}")
  if not 0 <= fmin < fmax <= sample_rate / 2.0:
    raise ValueError(
        f"mel_filterbank needs 0 <= fmin < fmax <= sample_rate / 2 = "
        f"{sample_rate / 2.0}; got fmin={fmin}, fmax={fmax}")
  fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
  mel_edges = _mel_to_hz(
      np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), num_mels + 2))
  edge_gaps = np.diff(mel_edges)
  ramps = mel_edges[:, None] - fft_freqs[None, :]
  rising = -ramps[:-2] / edge_gaps[:-1, None]
  falling = ramps[2:] / edge_gaps[1:, None]
  weights = np.maximum(0.0, np.minimum(rising, falling))
  # Slaney normalisation: each triangle has (roughly) constant area.
  weights *= (2.0 / (mel_edges[2:] - mel_edges[:-2]))[:, None]
  return weights.T.astype(np.float32)


def log_mel_spectrogram(audio: jnp.ndarray,
                        sample_rate: int,
                        n_fft: int,
                        hop_length: int,
                        num_mels: int,
                        fmin: float = 0.0,
                        fmax: Optional[float] = None,
                        eps: float = 1e-5,
                        center: bool = True,
                        drop_last: bool = False) -> jnp.ndarray:
  """Natural log of the mel-weighted STFT *magnitude* (not power).

  log(max(|STFT| @ mel_filterbank, eps)), the HiFi-GAN / vocoder convention;
  multiply by 2 for the log of a power-like quantity.

  Args:
    audio: [batch, samples] or [samples] waveform.
    sample_rate: sample rate in Hz.
    n_fft: FFT size (also the window length; Hann window).
    hop_length: samples between frames.
    num_mels: number of mel bands.
    fmin: lowest mel band edge in Hz.
    fmax: highest mel band edge in Hz (default sample_rate / 2).
    eps: floor on the mel magnitude before the log.
    center: centre frames on multiples of hop_length (reflect padding).
    drop_last: drop the final frame. With center=True and samples divisible
      by hop_length there are samples // hop_length + 1 frames; drop_last
      gives exactly samples // hop_length (e.g. 32 frames for 8192 samples at
      hop 256, aligned with 32 video frames: frame t covers the window centred
      on sample 256 t).

  Returns:
    [batch, frames, num_mels] (or [frames, num_mels] for 1-D audio).
  """
  mels = mel_magnitude(audio, sample_rate, n_fft, hop_length, num_mels, fmin,
                       fmax, center=center, drop_last=drop_last)
  return jnp.log(jnp.maximum(mels, eps))


def mel_magnitude(audio, sample_rate, n_fft, hop_length, num_mels, fmin=0.0,
                  fmax=None, center=True, drop_last=False):
  """|STFT| @ mel_filterbank: `log_mel_spectrogram` before its log."""
  spec = stft(audio, n_fft, hop_length, center=center)
  if drop_last:
    spec = spec[..., :-1, :]
  # A tiny power floor keeps the sqrt's gradient finite at silent bins.
  mags = magnitude(spec, eps=1e-12)
  filters = mel_filterbank(sample_rate, n_fft, num_mels, fmin, fmax)
  return jnp.matmul(mags, jnp.asarray(filters, dtype=mags.dtype))


def noise_mel_floor(sample_rate: int, n_fft: int, num_mels: int,
                    level_dbfs: float) -> np.ndarray:
  """Each mel band's expected magnitude for white noise at level_dbfs RMS.

  A bin of stationary white noise of RMS s under a Hann window is complex
  Gaussian with E|X|^2 = s^2 sum(w^2), so its magnitude is Rayleigh with
  mean s sqrt(sum(w^2) pi) / 2; a band sums its bins' weights.

  Returns:
    float32 [num_mels], a NumPy constant.
  """
  rms = 10.0 ** (level_dbfs / 20.0)
  window_energy = float(np.sum(_window("hann", n_fft, n_fft) ** 2))
  bin_magnitude = rms * np.sqrt(window_energy * np.pi) / 2.0
  filters = mel_filterbank(sample_rate, n_fft, num_mels)
  return (bin_magnitude * filters.sum(0)).astype(np.float32)


def floored_log_mel(audio: jnp.ndarray, sample_rate: int,
                    floor_dbfs: float = -50.0, frame_ms: float = 32.0,
                    num_mels: int = 40) -> jnp.ndarray:
  """log(mel magnitude + floor), the floor white noise at floor_dbfs.

  A phase-blind view of a clip in which what lies below the floor barely
  counts: two independent noises of one level have nearly the same log-mel
  frames (their waveforms differ everywhere), and sound well under
  floor_dbfs adds almost nothing to the log. Frames are frame_ms long
  (Hann, rounded to an even size), hop a quarter of that.

  Args:
    audio: [batch, samples] waveform, at least half a frame long.
    sample_rate: in Hz.
    floor_dbfs: the floor's RMS level in dB against full scale.
    frame_ms: analysis window length.
    num_mels: mel bands.

  Returns:
    [batch, frames, num_mels].
  """
  n_fft = 2 * max(1, int(round(frame_ms * sample_rate / 2000)))
  hop_length = max(1, n_fft // 4)
  mels = mel_magnitude(audio, sample_rate, n_fft, hop_length, num_mels)
  floor = noise_mel_floor(sample_rate, n_fft, num_mels, floor_dbfs)
  return jnp.log(mels + jnp.asarray(floor, dtype=mels.dtype))
