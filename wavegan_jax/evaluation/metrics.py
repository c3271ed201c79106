"""The evaluation metrics of docs/design.md as numpy / JAX functions.

Every function takes host arrays (numpy or jax) and returns Python floats or
numpy arrays; none depends on a model. The judges' outputs (logits,
probabilities, embeddings) come from `wavegan_jax.evaluation.evaluate`.

Per-clip scores from external packages (PESQ, STOI) never raise on one bad
clip: a clip they cannot score (silence, too short, a package error) gets
NaN, and the summary says how many failed (`ClipScores`).
"""

import math
from typing import NamedTuple, Optional
import warnings

import numpy as np
import scipy.linalg
import scipy.signal
import scipy.special

from wavegan_jax import losses


class ClipScores(NamedTuple):
  """Per-clip scores of a set of clips.

  Attributes:
    values: [num_clips] float64, NaN where the clip could not be scored.
    mean: the mean over the scored clips (NaN if none was).
    num_failed: how many clips could not be scored.
  """
  values: np.ndarray
  mean: float
  num_failed: int


def _summarise(values) -> ClipScores:
  values = np.asarray(values, np.float64)
  finite = np.isfinite(values)
  mean = float(np.mean(values[finite])) if finite.any() else math.nan
  return ClipScores(values, mean, int(np.sum(~finite)))


def _as_batch(audio, name: str) -> np.ndarray:
  audio = np.asarray(audio, np.float64)
  if audio.ndim == 1:
    audio = audio[None]
  if audio.ndim != 2:
    raise ValueError(f"{name}: expected audio [samples] or [clips, samples], "
                     f"got shape {audio.shape}")
  return audio


# --- Classification -------------------------------------------------------


def accuracy(logits_or_predictions, labels) -> float:
  """The share of clips whose predicted class equals the label.

  Args:
    logits_or_predictions: [N, C] logits or probabilities (the argmax is the
      prediction) or [N] integer predictions.
    labels: [N] integer labels.

  Returns:
    The accuracy in [0, 1].
  """
  scores = np.asarray(logits_or_predictions)
  labels = np.asarray(labels).reshape(-1)
  predictions = scores.argmax(-1) if scores.ndim == 2 else scores.reshape(-1)
  if predictions.shape != labels.shape or not labels.size:
    raise ValueError(f"accuracy: {predictions.shape[0]} predictions for "
                     f"{labels.shape[0]} labels")
  return float(np.mean(predictions == labels))


def confusion_matrix(predictions, labels, num_classes: int) -> np.ndarray:
  """[num_classes, num_classes] counts; row = true class, column = predicted."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (np.asarray(labels).reshape(-1),
                     np.asarray(predictions).reshape(-1)), 1)
  return matrix


def inception_score(probabilities, num_splits: int = 10
                    ) -> tuple[float, float]:
  """Inception score exp(E_x KL(p(y|x) || p(y))), mean and std over splits.

  As in Salimans et al. (2016) and the WaveGAN paper: the clips are cut into
  `num_splits` contiguous parts; in each, p(y) is the part's mean
  prediction.

  Args:
    probabilities: [N, C] class probabilities (rows sum to 1), N >= splits.
    num_splits: number of parts.

  Returns:
    (mean, standard deviation) of the per-part scores.
  """
  probabilities = np.asarray(probabilities, np.float64)
  if probabilities.ndim != 2 or len(probabilities) < num_splits:
    raise ValueError(f"inception_score needs [N, C] probabilities with "
                     f"N >= num_splits={num_splits}; got shape "
                     f"{probabilities.shape}")
  scores = []
  for part in np.array_split(probabilities, num_splits):
    marginal = part.mean(axis=0, keepdims=True)
    # xlogy makes 0 * log 0 = 0, so one-hot predictions are exact.
    kl = np.sum(scipy.special.xlogy(part, part) -
                scipy.special.xlogy(part, marginal), axis=1)
    scores.append(math.exp(float(np.mean(kl))))
  return float(np.mean(scores)), float(np.std(scores))


def inception_entropies(probabilities) -> dict:
  """What an inception score is made of, over the whole set.

  log IS of one split = H(y) - E_x H(y|x): the judge's confidence per clip
  (conditional entropy, 0 at best) and the spread of its decisions over the
  classes (marginal entropy, log C at best). A low IS from unsure clips and
  one from dropped classes look alike; these tell them apart.

  Args:
    probabilities: [N, C] class probabilities (rows sum to 1), N >= 1.

  Returns:
    dict with 'conditional_entropy' (nats), 'marginal_entropy' (nats) and
    'class_counts' (how many clips the judge assigns to each class, argmax).
  """
  probabilities = np.asarray(probabilities, np.float64)
  if probabilities.ndim != 2 or not len(probabilities):
    raise ValueError(f"inception_entropies needs [N, C] probabilities with "
                     f"N >= 1; got shape {probabilities.shape}")
  conditional = -np.sum(scipy.special.xlogy(probabilities, probabilities),
                        axis=1)
  marginal = probabilities.mean(axis=0)
  return {
      "conditional_entropy": float(np.mean(conditional)),
      "marginal_entropy": float(-np.sum(scipy.special.xlogy(marginal,
                                                            marginal))),
      "class_counts": np.bincount(np.argmax(probabilities, axis=1),
                                  minlength=probabilities.shape[1]).tolist(),
  }


# --- Distributions of embeddings ------------------------------------------


def frechet_distance(embeddings_a, embeddings_b) -> float:
  """Frechet distance between Gaussians fitted to two sets of embeddings.

  ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b)), with the sample
  covariances S and scipy's matrix square root (its real part; if the
  product is singular enough for sqrtm to fail, a 1e-6 ridge is added to
  both covariances, as in the reference FID code).

  Args:
    embeddings_a: [N_a, E] (N_a >= 2).
    embeddings_b: [N_b, E] (N_b >= 2).

  Returns:
    The distance (>= 0 up to rounding).
  """
  a = np.asarray(embeddings_a, np.float64)
  b = np.asarray(embeddings_b, np.float64)
  if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
    raise ValueError(f"frechet_distance needs two [N, E] sets of the same "
                     f"E; got {a.shape} and {b.shape}")
  if min(len(a), len(b)) < 2:
    raise ValueError(f"frechet_distance needs >= 2 embeddings per set; got "
                     f"{len(a)} and {len(b)}")
  mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
  cov_a = np.atleast_2d(np.cov(a, rowvar=False))
  cov_b = np.atleast_2d(np.cov(b, rowvar=False))
  with warnings.catch_warnings():
    # Fewer embeddings than dimensions give singular covariances; sqrtm
    # warns, and its (real part of the) result is what FID code uses too.
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
  if not np.all(np.isfinite(root)):
    ridge = 1e-6 * np.eye(len(cov_a))
    root = scipy.linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
  root = np.real(root)
  return float(np.sum((mean_a - mean_b) ** 2) +
               np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))


def nearest_neighbour_distances(queries, references,
                                exclude_self: bool = False) -> np.ndarray:
  """Euclidean distance of each query to its nearest reference, [N_q].

  Args:
    queries: [N_q, E].
    references: [N_r, E].
    exclude_self: queries and references are the same set: skip each
      query's distance to itself (the WaveGAN paper's within-set figure).

  Returns:
    The per-query nearest-neighbour distances.
  """
  queries = np.asarray(queries, np.float64)
  references = np.asarray(references, np.float64)
  squared = (np.sum(queries ** 2, 1)[:, None] +
             np.sum(references ** 2, 1)[None] - 2.0 * queries @ references.T)
  squared = np.maximum(squared, 0.0)
  if exclude_self:
    if queries.shape != references.shape or len(queries) < 2:
      raise ValueError("exclude_self needs one set of >= 2 embeddings")
    np.fill_diagonal(squared, np.inf)
  return np.sqrt(squared.min(axis=1))


# --- Timing ----------------------------------------------------------------


def frame_rms(audio, frame_length: int, hop_length: int) -> np.ndarray:
  """RMS of frames [k * hop, k * hop + frame_length), [B, num_frames]."""
  audio = _as_batch(audio, "frame_rms")
  num_frames = 1 + max(0, audio.shape[1] - frame_length) // hop_length
  starts = np.arange(num_frames) * hop_length
  index = starts[:, None] + np.arange(frame_length)[None]
  return np.sqrt(np.mean(audio[:, index] ** 2, axis=-1))


def silent_fraction(audio, sample_rate: int, frame_ms: float = 32.0,
                    threshold_db: float = -50.0) -> float:
  """The share of `frame_ms` frames (no overlap) quieter than threshold_db.

  The threshold is in dB of RMS against full scale (1.0). A spoken digit in
  a one-second clip leaves most of the clip silent (FSDD test clips: 0.60
  of their frames); the judges barely hear what fills that silence, so this
  shows what the inception score misses.

  Args:
    audio: [N] or [B, N] waveform, at least one frame long.
    sample_rate: in Hz.
    frame_ms: frame length.
    threshold_db: RMS below this (dBFS) is silence.

  Returns:
    The fraction of all the clips' frames that are silent, in [0, 1].
  """
  frame_length = max(1, int(round(frame_ms * sample_rate / 1000)))
  audio = _as_batch(audio, "silent_fraction")
  if audio.shape[1] < frame_length:
    raise ValueError(f"silent_fraction: clips of {audio.shape[1]} samples "
                     f"are shorter than one {frame_ms} ms frame "
                     f"({frame_length} samples)")
  rms = frame_rms(audio, frame_length, frame_length)
  return float(np.mean(rms < 10.0 ** (threshold_db / 20.0)))


def detect_onset(audio, sample_rate: int, frame_ms: float = 10.0,
                 hop_ms: float = 2.5, threshold_db: float = -20.0,
                 silence_rms: float = 1e-4) -> np.ndarray:
  """Energy-based onset of each clip, in samples.

  The clip, preceded by one frame of zeros, is cut into frames of
  `frame_ms` every `hop_ms`; the onset is the END of the first frame whose
  RMS exceeds `threshold_db` relative to the clip's loudest frame (the time
  by which the sound of the last `frame_ms` crossed the threshold). For a
  step onset at sample k (silence, then sound) that frame ends within one
  hop after k, whatever the threshold; a slowly rising sound is reported
  when its short-time energy crosses the threshold.

  Args:
    audio: [N] or [B, N] waveform.
    sample_rate: in Hz.
    frame_ms: analysis frame length.
    hop_ms: analysis hop (the resolution of the result).
    threshold_db: the threshold relative to the loudest frame's RMS (< 0).
    silence_rms: a clip whose loudest frame is below this RMS is silent.

  Returns:
    [B] float64 onsets in samples; NaN for silent (or non-finite) clips.
  """
  frame_length = max(1, int(round(frame_ms * sample_rate / 1000)))
  hop_length = max(1, int(round(hop_ms * sample_rate / 1000)))
  audio = _as_batch(audio, "detect_onset")
  padded = np.pad(audio, ((0, 0), (frame_length, 0)))
  rms = frame_rms(padded, frame_length, hop_length)
  peak = rms.max(axis=1)
  above = rms > (peak * 10.0 ** (threshold_db / 20.0))[:, None]
  # Padded frame i ends at original sample i * hop_length.
  onsets = (np.argmax(above, axis=1) * hop_length).astype(np.float64)
  onsets[~np.isfinite(peak) | (peak < silence_rms)] = np.nan
  return onsets


def sync_error_ms(generated, onset_frames, samples_per_frame: int,
                  sample_rate: int, **onset_kwargs) -> tuple[np.ndarray,
                                                             float]:
  """|detected audio onset - visual onset| in milliseconds.

  Args:
    generated: [B, N] audio.
    onset_frames: [B] video frame at which the digit appears.
    samples_per_frame: audio samples per video frame.
    sample_rate: in Hz.
    **onset_kwargs: passed to `detect_onset`.

  Returns:
    ([B] errors, NaN for silent clips; their median over the detected
    clips, NaN if none).
  """
  onsets = detect_onset(generated, sample_rate, **onset_kwargs)
  visual = np.asarray(onset_frames, np.float64).reshape(-1) * samples_per_frame
  errors = np.abs(onsets - visual) * 1000.0 / sample_rate
  finite = np.isfinite(errors)
  median = float(np.median(errors[finite])) if finite.any() else math.nan
  return errors, median


# --- Signal similarity to the paired target --------------------------------


def _resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
  if rate == target_rate:
    return audio
  divisor = math.gcd(rate, target_rate)
  return scipy.signal.resample_poly(audio, target_rate // divisor,
                                    rate // divisor, axis=-1)


def pesq_nb(reference, degraded, sample_rate: int = 8000) -> ClipScores:
  """Narrow-band PESQ (ITU-T P.862, the `pesq` package) of each clip pair.

  Audio at another rate than 8 or 16 kHz is resampled to 8 kHz. A clip
  PESQ cannot score (e.g. no utterance found in a silent clip) gets NaN.

  Args:
    reference: [N] or [B, N] clean audio (the paired target).
    degraded: the same shape (the generated audio).
    sample_rate: in Hz.

  Returns:
    ClipScores (MOS-LQO values, about 1 to 4.5).
  """
  import pesq  # pylint: disable=g-import-not-at-top
  reference = _as_batch(reference, "pesq_nb reference")
  degraded = _as_batch(degraded, "pesq_nb degraded")
  if reference.shape != degraded.shape:
    raise ValueError(f"pesq_nb: reference {reference.shape} and degraded "
                     f"{degraded.shape} differ in shape")
  if sample_rate not in (8000, 16000):
    reference = _resample(reference, sample_rate, 8000)
    degraded = _resample(degraded, sample_rate, 8000)
    sample_rate = 8000
  values = []
  for clean, noisy in zip(reference, degraded):
    if not np.all(np.isfinite(noisy)) or np.max(np.abs(clean)) < 1e-6:
      values.append(math.nan)
      continue
    try:
      values.append(pesq.pesq(sample_rate, clean, noisy, "nb"))
    except Exception:  # pylint: disable=broad-except
      # pesq raises its own errors (NoUtterancesError, BufferTooShortError)
      # and C-level ValueErrors: every one means "this clip has no score".
      values.append(math.nan)
  return _summarise(values)


def stoi(reference, degraded, sample_rate: int) -> ClipScores:
  """Short-time objective intelligibility (the `pystoi` package) per clip.

  A clip pair STOI cannot score (a silent reference, where STOI's
  silent-frame removal leaves nothing, or a package error) gets NaN.

  Args:
    reference: [N] or [B, N] clean audio (the paired target).
    degraded: the same shape (the generated audio).
    sample_rate: in Hz (pystoi resamples to 10 kHz itself).

  Returns:
    ClipScores (values in about [0, 1]; 1 = identical).
  """
  import pystoi  # pylint: disable=g-import-not-at-top
  reference = _as_batch(reference, "stoi reference")
  degraded = _as_batch(degraded, "stoi degraded")
  if reference.shape != degraded.shape:
    raise ValueError(f"stoi: reference {reference.shape} and degraded "
                     f"{degraded.shape} differ in shape")
  values = []
  for clean, noisy in zip(reference, degraded):
    if not np.all(np.isfinite(noisy)) or np.max(np.abs(clean)) < 1e-6:
      values.append(math.nan)
      continue
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      try:
        value = pystoi.stoi(clean, noisy, sample_rate, extended=False)
      except Exception:  # pylint: disable=broad-except
        value = math.nan
    # Fewer than 30 non-silent frames (384 ms of speech at 10 kHz) leave
    # STOI undefined; pystoi then warns and returns 1e-5, not a score.
    if any("Not enough STFT frames" in str(w.message) for w in caught):
      value = math.nan
    values.append(value if np.isfinite(value) else math.nan)
  return _summarise(values)


def multi_resolution_stft_distance(a, b, **stft_kwargs) -> dict:
  """The multi-resolution STFT loss of `losses` between two sets of clips.

  Args:
    a: [B, N] audio (the generated clips).
    b: [B, N] audio (the paired targets).
    **stft_kwargs: resolutions, as in losses.multi_resolution_stft_loss.

  Returns:
    {'total', 'spectral_convergence', 'log_magnitude'} as floats.
  """
  a = np.asarray(a, np.float32)
  b = np.asarray(b, np.float32)
  values = losses.multi_resolution_stft_loss(a, b, **stft_kwargs)
  return {key: float(value) for key, value in values.items()}


def to_probabilities(logits) -> np.ndarray:
  """Softmax over the last axis (float64)."""
  return scipy.special.softmax(np.asarray(logits, np.float64), axis=-1)


def safe_float(value: Optional[float]) -> Optional[float]:
  """A JSON-friendly float: NaN / inf become None."""
  if value is None or not np.isfinite(value):
    return None
  return float(value)
