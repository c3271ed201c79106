"""Instruments from the field, beside the project's own judges.

The judges are trained on the clips the generators imitate and are lenient
with smeared, buzzy audio (docs/instruments.md).
These measures come from outside the project; `evaluate.py` applies each to
the generated clips and to the real clips of the same evaluation:

* DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS (`speechmos`, ONNX models
  that ship in its wheel): neural MOS predictors of 16 kHz speech.
* pYIN (librosa) voicing on loud frames: the share voiced, V/UV F1 and F0
  error in cents against a paired target.
* Spectral flatness of loud frames (noise is flat, voiced speech is not).
* Mel-cepstral distortion against a paired target (DTW-aligned).
* PocketSphinx's US-English recogniser held to the ten digit words.
* The height of tonal lines in the mean spectrum at multiples of
  sample_rate / stride^k (the transposed convolutions' checkerboard).

Everything runs on local files: no model is downloaded. Every function
takes host arrays [B, N] (or [N]) of audio in [-1, 1] and returns floats or
numpy arrays. A silent clip never raises: it has no loud frames, so it adds
nothing to the loud-frame measures, is recognised as no digit (-1) and gets
NaN as its MCD; DNSMOS scores silence like any other input.
"""

import math
from typing import NamedTuple, Sequence
import warnings

import numpy as np
import scipy.fft
import scipy.signal

from wavegan_jax.evaluation import metrics

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six",
               "seven", "eight", "nine")
DNSMOS_RATE = 16000
# speechmos scores 9.01 s windows (its INPUT_LENGTH), tiling shorter input.
DNSMOS_WINDOW = int(9.01 * DNSMOS_RATE)
DNSMOS_GROUP = 8
ASR_RATE = 16000
ASR_PAD_S = 0.25  # Silence around each clip: 0.76 vs 0.72 real accuracy.
# Under the project's -50 dBFS silence: FSDD's quietest speaker (theo)
# peaks at -43 to -40 dBFS per 64 ms frame, so -40 would drop half his takes.
LOUD_FLOOR_DB = -55.0
LOUD_RANGE_DB = 30.0
PITCH_FMIN = 60.0
PITCH_FMAX = 500.0
_FLOOR = 1e-10


def _clips(audio, name: str) -> np.ndarray:
  """[B, N] float64 of finite audio; one-line errors for bad input."""
  audio = np.asarray(audio, np.float64)
  if audio.ndim == 1:
    audio = audio[None]
  if audio.ndim != 2 or audio.shape[1] == 0 or audio.shape[0] == 0:
    raise ValueError(f"{name}: expected audio [samples] or [clips, samples] "
                     f"with samples > 0, got shape {audio.shape}")
  if not np.all(np.isfinite(audio)):
    raise ValueError(f"{name}: audio has non-finite samples")
  return audio


def _resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
  if rate == target_rate:
    return audio
  divisor = math.gcd(int(rate), int(target_rate))
  return scipy.signal.resample_poly(audio, target_rate // divisor,
                                    rate // divisor, axis=-1)


# --- Frames and loudness ---------------------------------------------------


def pitch_frame_grid(sample_rate: int) -> tuple[int, int]:
  """(frame_length, hop_length) of the voicing frames: ~64 ms every 16 ms.

  The frame is a power of two near 64 ms (512 samples at 8 kHz): pYIN needs
  two periods of its 60 Hz floor in a frame.
  """
  frame_length = 2 ** int(round(math.log2(0.064 * sample_rate)))
  return frame_length, frame_length // 4


def frame_level_db(audio, frame_length: int, hop_length: int) -> np.ndarray:
  """RMS level (dBFS) of centred frames, as librosa frames them.

  Args:
    audio: [B, N] audio.
    frame_length: samples per frame.
    hop_length: samples between frame starts.

  Returns:
    [B, 1 + N // hop_length] levels; frame t is centred on sample
    t * hop_length (zero padding at both ends), floored at -200 dB.
  """
  audio = _clips(audio, "frame_level_db")
  half = frame_length // 2
  padded = np.pad(audio, ((0, 0), (half, half)))
  num_frames = 1 + audio.shape[1] // hop_length
  index = (np.arange(num_frames)[:, None] * hop_length
           + np.arange(frame_length)[None])
  power = np.mean(padded[:, index] ** 2, axis=-1)
  return 10.0 * np.log10(np.maximum(power, 1e-20))


def loud_frames(levels_db: np.ndarray, floor_db: float = LOUD_FLOOR_DB,
                range_db: float = LOUD_RANGE_DB) -> np.ndarray:
  """Frames above floor_db dBFS and within range_db of the clip's loudest.

  Args:
    levels_db: [B, T] frame levels from `frame_level_db`.
    floor_db: the absolute floor (dBFS).
    range_db: how far below the clip's loudest frame a frame may be.

  Returns:
    [B, T] bool; all False for a clip quieter than floor_db throughout.
  """
  levels_db = np.asarray(levels_db)
  peak = levels_db.max(axis=-1, keepdims=True)
  return (levels_db > floor_db) & (levels_db >= peak - range_db)


SILENT_TARGET_RANGE_DB = 60.0
AUDIBLE_IN_SILENCE_DB = -40.0


def level_where_target_is_silent(generated, target, frame_length: int
                                 ) -> dict:
  """How loud generated audio is where its paired target is silent.

  A regression can meet its loss while leaving a floor of tones or noise
  in the silence around a word; the judges and DNSMOS barely hear it.
  Frames (non-overlapping, `frame_length` samples) where the target is more
  than SILENT_TARGET_RANGE_DB below its own loudest frame count as silent;
  there the generated level is taken relative to the generated clip's
  loudest frame.

  Args:
    generated: [B, N] generated clips.
    target: [B, N] the paired targets.
    frame_length: samples per frame.

  Returns:
    {'silence_level_db': the median relative level over all silent frames
     (NaN when none), 'silence_audible_share': the share of them above
     AUDIBLE_IN_SILENCE_DB, 'silence_frames': how many there were}.
  """
  generated = _clips(generated, "level_where_target_is_silent")
  target = _clips(target, "level_where_target_is_silent")
  if generated.shape != target.shape:
    raise ValueError(f"generated {generated.shape} and target "
                     f"{target.shape} must have one shape")
  if generated.shape[1] < frame_length:
    raise ValueError(f"clips of {generated.shape[1]} samples are shorter "
                     f"than one frame of {frame_length}")

  def levels(audio):
    rms = metrics.frame_rms(audio, frame_length, hop_length=frame_length)
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    return db - db.max(axis=1, keepdims=True)

  silent = levels(target) < -SILENT_TARGET_RANGE_DB
  relative = levels(generated)[silent]
  count = int(silent.sum())
  return {
      "silence_level_db": float(np.median(relative)) if count else np.nan,
      "silence_audible_share": (float(np.mean(
          relative > AUDIBLE_IN_SILENCE_DB)) if count else np.nan),
      "silence_frames": count}


# --- Voicing, pitch and flatness -------------------------------------------


class PitchTrack(NamedTuple):
  """pYIN's decisions on a set of clips, all [B, T] on one frame grid.

  Attributes:
    f0: fundamental frequency in Hz, NaN where unvoiced.
    voiced: pYIN's voicing decision.
    loud: `loud_frames` of the same frames.
  """
  f0: np.ndarray
  voiced: np.ndarray
  loud: np.ndarray


def pitch_track(audio, sample_rate: int, fmin: float = PITCH_FMIN,
                fmax: float = PITCH_FMAX) -> PitchTrack:
  """pYIN (librosa, its default 0.1-semitone resolution) on every clip.

  Costs about 0.1 s per 1 s clip on one core (the Viterbi pass over 2 x
  367 pitch states dominates).

  Args:
    audio: [B, N] audio.
    sample_rate: in Hz.
    fmin: lowest F0 searched (Hz).
    fmax: highest F0 searched (Hz).

  Returns:
    A PitchTrack on the `pitch_frame_grid` frames.
  """
  import librosa  # pylint: disable=g-import-not-at-top
  audio = _clips(audio, "pitch_track")
  frame_length, hop_length = pitch_frame_grid(sample_rate)
  with warnings.catch_warnings():
    # Silent frames divide zero by zero in YIN's normalisation; pYIN then
    # calls them unvoiced, which is what they are.
    warnings.simplefilter("ignore", RuntimeWarning)
    f0, voiced, _ = librosa.pyin(audio, fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=frame_length,
                                 hop_length=hop_length)
  loud = loud_frames(frame_level_db(audio, frame_length, hop_length))
  return PitchTrack(f0, voiced & np.isfinite(f0), loud)


def voiced_share(track: PitchTrack) -> float:
  """Voiced loud frames / loud frames, pooled over all clips (NaN if none)."""
  loud = int(track.loud.sum())
  return float(track.voiced[track.loud].sum() / loud) if loud else math.nan


def vuv_f1(generated: PitchTrack, reference: PitchTrack) -> float:
  """F1 of the generated clips' voicing against the paired references'.

  Voiced is the positive class; every frame of every pair counts (a voiced
  frame in the reference's silence is a false positive).

  Args:
    generated: the generated clips' track.
    reference: the paired target clips' track, the same shape.

  Returns:
    2 TP / (2 TP + FP + FN) in [0, 1]; NaN when neither side has a voiced
    frame.
  """
  if generated.voiced.shape != reference.voiced.shape:
    raise ValueError(f"vuv_f1: tracks of shapes {generated.voiced.shape} "
                     f"and {reference.voiced.shape} differ")
  true_positive = np.sum(generated.voiced & reference.voiced)
  wrong = np.sum(generated.voiced != reference.voiced)
  denominator = 2 * true_positive + wrong
  return float(2 * true_positive / denominator) if denominator else math.nan


def f0_error_cents(generated: PitchTrack, reference: PitchTrack) -> float:
  """Median |1200 log2(f0_gen / f0_ref)| over frames voiced in both.

  Args:
    generated: the generated clips' track.
    reference: the paired target clips' track, the same shape.

  Returns:
    Cents (1200 = an octave); NaN when no frame is voiced in both.
  """
  if generated.f0.shape != reference.f0.shape:
    raise ValueError(f"f0_error_cents: tracks of shapes {generated.f0.shape} "
                     f"and {reference.f0.shape} differ")
  both = generated.voiced & reference.voiced
  if not both.any():
    return math.nan
  return float(np.median(np.abs(
      1200.0 * np.log2(generated.f0[both] / reference.f0[both]))))


def f0_range_cents(track: PitchTrack, min_frames: int = 5) -> float:
  """How far each clip's pitch moves: the median over clips of
  1200 log2(p90 / p10) of the F0 of its voiced loud frames.

  Speech glides (the 300 FSDD test takes: 227 cents); a generator that holds
  one averaged pitch through the word draws flat harmonics and scores near
  0 however voiced it is.

  Args:
    track: a `pitch_track`.
    min_frames: clips with fewer voiced loud frames are left out.

  Returns:
    Cents; NaN when no clip has min_frames voiced loud frames.
  """
  ranges = []
  for f0, voiced, loud in zip(track.f0, track.voiced, track.loud):
    pitch = f0[voiced & loud]
    if len(pitch) >= min_frames:
      low, high = np.percentile(pitch, [10, 90])
      ranges.append(1200.0 * np.log2(high / low))
  return float(np.median(ranges)) if ranges else math.nan


def spectral_flatness(audio, sample_rate: int) -> float:
  """Median spectral flatness (librosa, power) of the loud frames.

  Frames are the voicing frames (`pitch_frame_grid`), pooled over clips.

  Args:
    audio: [B, N] audio.
    sample_rate: in Hz.

  Returns:
    The median in [0, 1] (1 = white noise); NaN when no frame is loud.
  """
  import librosa  # pylint: disable=g-import-not-at-top
  audio = _clips(audio, "spectral_flatness")
  frame_length, hop_length = pitch_frame_grid(sample_rate)
  flatness = librosa.feature.spectral_flatness(
      y=audio, n_fft=frame_length, hop_length=hop_length)[:, 0]
  loud = loud_frames(frame_level_db(audio, frame_length, hop_length))
  return float(np.median(flatness[loud])) if loud.any() else math.nan


# --- Mel-cepstral distortion -----------------------------------------------


def mel_cepstra(audio, sample_rate: int, num_coefficients: int = 12,
                num_mels: int = 40) -> list:
  """Mel-cepstra c1..c{num_coefficients} over each clip's loud span.

  32 ms Hann frames every 8 ms; 40 mel bands (librosa,
  Slaney) of the power spectrum; the natural log of the band amplitudes
  (0.5 ln power, power floored at 1e-10); their DCT-II divided by 2 x bands,
  which is the real cepstrum of that log spectrum read as half of a
  symmetric one, so that the MCD lands in the literature's range of a few
  dB (not equal to SPTK's all-pass mel-cepstra); c0 (energy) dropped. The
  span runs from the first to the last loud frame (`loud_frames` on these
  frames), so padding silence does not count.

  Args:
    audio: [B, N] audio.
    sample_rate: in Hz.
    num_coefficients: cepstra kept after c0.
    num_mels: mel bands.

  Returns:
    B arrays [T_b, num_coefficients], or None for a clip with no loud frame.
  """
  import librosa  # pylint: disable=g-import-not-at-top
  audio = _clips(audio, "mel_cepstra")
  n_fft = int(round(0.032 * sample_rate))
  hop_length = int(round(0.008 * sample_rate))
  spectrum = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop_length,
                                 window="hann", pad_mode="constant")) ** 2
  mel = np.einsum("mf,bft->btm", librosa.filters.mel(
      sr=sample_rate, n_fft=n_fft, n_mels=num_mels), spectrum)
  log_amplitude = 0.5 * np.log(np.maximum(mel, _FLOOR))
  cepstra = scipy.fft.dct(log_amplitude, type=2, axis=-1)[
      ..., 1:num_coefficients + 1] / (2 * num_mels)
  loud = loud_frames(frame_level_db(audio, n_fft, hop_length))
  spans = []
  for clip_cepstra, clip_loud in zip(cepstra, loud):
    frames = np.flatnonzero(clip_loud)
    spans.append(clip_cepstra[frames[0]:frames[-1] + 1] if frames.size
                 else None)
  return spans


def mel_cepstral_distortion(a, b, sample_rate: int) -> np.ndarray:
  """DTW-aligned MCD (dB) between the loud spans of paired clips.

  Per aligned frame pair: (10 / ln 10) sqrt(2 sum_k (c_k - c'_k)^2) over
  `mel_cepstra`'s c1..c12; the mean along librosa's DTW path (Euclidean
  cost, steps (1,1), (1,0), (0,1)). DTW, not frame order, because the
  real floor compares two takes of a word that do not line up in time.

  Args:
    a: [B, N] audio (e.g. generated).
    b: [B, N'] audio (e.g. the paired targets).
    sample_rate: in Hz.

  Returns:
    [B] MCD in dB; NaN for a pair where either clip has no loud frame.
  """
  import librosa  # pylint: disable=g-import-not-at-top
  a_cepstra = mel_cepstra(a, sample_rate)
  b_cepstra = mel_cepstra(b, sample_rate)
  if len(a_cepstra) != len(b_cepstra):
    raise ValueError(f"mel_cepstral_distortion: {len(a_cepstra)} clips "
                     f"paired with {len(b_cepstra)}")
  scale = 10.0 / math.log(10.0) * math.sqrt(2.0)
  values = np.full(len(a_cepstra), math.nan)
  for i, (x, y) in enumerate(zip(a_cepstra, b_cepstra)):
    if x is None or y is None:
      continue
    cost = np.sqrt(np.sum((x[:, None] - y[None]) ** 2, axis=-1))
    _, path = librosa.sequence.dtw(C=cost)
    values[i] = scale * np.mean(cost[path[:, 0], path[:, 1]])
  return values


# --- Speech recognition ------------------------------------------------------


class DigitRecogniser:
  """PocketSphinx (US-English model of its wheel) held to the ten digits.

  The JSGF grammar allows exactly one of zero..nine per clip (FSDD says
  "zero" for 0), so the decoder always names a digit for sound; a clip with
  no loud frame (`loud_frames` on the voicing frames) is not decoded and
  is recognised as -1. Each clip is resampled to 16 kHz and decoded as one
  utterance with ASR_PAD_S of silence added at both ends.
  """

  def __init__(self):
    import pocketsphinx  # pylint: disable=g-import-not-at-top
    config = pocketsphinx.Config(loglevel="FATAL")
    self._decoder = pocketsphinx.Decoder(config)
    grammar = ("#JSGF V1.0;\ngrammar digits;\npublic <digit> = "
               + " | ".join(DIGIT_WORDS) + ";\n")
    self._decoder.add_jsgf_string("digits", grammar)
    self._decoder.activate_search("digits")

  def __call__(self, audio, sample_rate: int) -> np.ndarray:
    """The digit heard in each clip.

    Args:
      audio: [B, N] audio in [-1, 1], N > 0.
      sample_rate: in Hz.

    Returns:
      [B] int64 digits, -1 for a silent clip or no hypothesis.
    """
    audio = _clips(audio, "DigitRecogniser")
    frame_length, hop_length = pitch_frame_grid(sample_rate)
    sounding = loud_frames(frame_level_db(audio, frame_length,
                                          hop_length)).any(axis=-1)
    pad = int(ASR_PAD_S * ASR_RATE)
    resampled = _resample(audio, sample_rate, ASR_RATE)
    digits = np.full(len(audio), -1, np.int64)
    for i in np.flatnonzero(sounding):
      pcm = np.round(np.clip(np.pad(resampled[i], pad), -1.0, 1.0)
                     * 32767).astype(np.int16)
      self._decoder.start_utt()
      self._decoder.process_raw(pcm.tobytes(), no_search=False,
                                full_utt=True)
      self._decoder.end_utt()
      hypothesis = self._decoder.hyp()
      word = hypothesis.hypstr.strip() if hypothesis is not None else ""
      if word in DIGIT_WORDS:
        digits[i] = DIGIT_WORDS.index(word)
    return digits


# --- DNSMOS ------------------------------------------------------------------


def dnsmos(audio, sample_rate: int, group_size: int = DNSMOS_GROUP) -> dict:
  """DNSMOS P.835 and P.808 of clips joined in groups (speechmos).

  DNSMOS scores 9.01 s windows; one window per 1 s clip would cost 9 s of
  audio per second scored. So the clips are resampled to 16 kHz
  (polyphase), joined in order in groups of `group_size` (8 x 1.024 s =
  8.19 s), each group tiled to one 9.01 s window as speechmos tiles short
  input (the group's first 0.82 s repeats) and scored once; the figures
  are means over groups. 300 one-second clips (38 windows) take about
  40 s on this 2-core machine while training runs beside it. On the 300
  FSDD test takes this gives OVRL 2.59, SIG 2.97, BAK 3.79, P.808 2.83;
  speechmos.dnsmos.run on the same groups (its 7 overlapping windows)
  2.58, 2.95, 3.79, 2.84.

  Args:
    audio: [B, N] audio, clipped to [-1, 1] for the models.
    sample_rate: in Hz.
    group_size: clips per group (> 0).

  Returns:
    {'sig', 'bak', 'ovrl', 'p808', 'num_groups'}.
  """
  # pylint: disable-next=g-import-not-at-top
  from speechmos import dnsmos as speechmos_dnsmos
  audio = _clips(audio, "dnsmos")
  if group_size < 1:
    raise ValueError(f"dnsmos: group_size must be >= 1, got {group_size}")
  audio = np.clip(_resample(audio, sample_rate, DNSMOS_RATE), -1.0, 1.0)
  scores = {"sig": [], "bak": [], "ovrl": [], "p808": []}
  for start in range(0, len(audio), group_size):
    joined = audio[start:start + group_size].reshape(-1)
    window = np.tile(joined, -(-DNSMOS_WINDOW // joined.size))[:DNSMOS_WINDOW]
    result = speechmos_dnsmos.run(window.astype(np.float32), DNSMOS_RATE)
    for key in scores:
      scores[key].append(float(result[f"{key}_mos"]))
  means = {key: float(np.mean(values)) for key, values in scores.items()}
  means["num_groups"] = len(scores["sig"])
  return means


# --- Tonal lines -------------------------------------------------------------


def tonal_line_heights(audio, sample_rate: int,
                       strides: Sequence[int] = (4, 4, 4), n_fft: int = 2048,
                       peak_bins: int = 1, neighbourhood_hz: float = 50.0,
                       exclude_bins: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """How far the mean spectrum stands out at each upsampling multiple.

  The mean power spectrum of all clips (Welch: Hann segments of n_fft,
  half overlap, averaged over segments and clips; 3.9 Hz bins at 8 kHz) is
  read in dB at every multiple m * sample_rate / (s_1 ... s_k) below
  Nyquist, for k = 1 .. len(strides) (the default: the families of
  sample_rate/4, /16 and /64; at 8 kHz 2000 Hz, every 500 Hz, every 125 Hz).
  A line's height is its peak (the max within +-peak_bins bins) minus the
  median of its neighbourhood (bins within +-neighbourhood_hz, leaving out
  +-exclude_bins). White noise gives about 1 dB; the checkerboard of a
  transposed-convolution generator several.

  Args:
    audio: [B, N] audio, N >= n_fft.
    sample_rate: in Hz.
    strides: the generator's upsampling strides, last layer first.
    n_fft: Welch segment length.
    peak_bins: half-width of the peak search.
    neighbourhood_hz: half-width of the neighbourhood.
    exclude_bins: half-width left out of the neighbourhood.

  Returns:
    (the multiples in Hz, ascending and distinct; their heights in dB).
  """
  audio = _clips(audio, "tonal_line_db")
  if audio.shape[1] < n_fft:
    raise ValueError(f"tonal_line_db: clips of {audio.shape[1]} samples are "
                     f"shorter than n_fft={n_fft}")
  _, power = scipy.signal.welch(audio, fs=sample_rate, window="hann",
                                nperseg=n_fft, noverlap=n_fft // 2, axis=-1)
  decibels = 10.0 * np.log10(np.maximum(power.mean(axis=0), 1e-20))
  bin_hz = sample_rate / n_fft
  radius = int(round(neighbourhood_hz / bin_hz))
  frequencies = set()
  period = 1
  for stride in strides:
    period *= stride
    frequencies.update(m * sample_rate / period
                       for m in range(1, period // 2 + 1)
                       if m * sample_rate / period < sample_rate / 2)
  frequencies = np.array(sorted(frequencies))
  heights = np.empty(len(frequencies))
  for i, frequency in enumerate(frequencies):
    centre = int(round(frequency / bin_hz))
    peak = decibels[max(0, centre - peak_bins):centre + peak_bins + 1].max()
    offsets = np.arange(-radius, radius + 1)
    offsets = offsets[np.abs(offsets) > exclude_bins] + centre
    offsets = offsets[(offsets >= 0) & (offsets < len(decibels))]
    heights[i] = peak - np.median(decibels[offsets])
  return frequencies, heights


def highest_line(frequencies: np.ndarray,
                 heights: np.ndarray) -> tuple[float, float]:
  """(the largest height in dB, its frequency in Hz)."""
  best = int(np.argmax(heights))
  return float(heights[best]), float(frequencies[best])


def tonal_line_db(audio, sample_rate: int, strides: Sequence[int] = (4, 4, 4),
                  **kwargs) -> tuple[float, float]:
  """The highest of `tonal_line_heights` (dB) and its frequency (Hz)."""
  return highest_line(*tonal_line_heights(audio, sample_rate, strides,
                                          **kwargs))


def tonal_line_excess_db(generated, real, sample_rate: int,
                         strides: Sequence[int] = (4, 4, 4),
                         **kwargs) -> tuple[float, float]:
  """How far generated clips' lines stand above the real clips' own.

  Speech has spectral shape of its own at some multiples (FSDD's mean
  spectrum stands 5.9 dB out at 125 Hz, its voices' pitch region), which
  is not an upsampling artefact; the excess counts only what the generator
  adds: the largest `tonal_line_heights` of the generated clips minus the
  real clips' at the same multiple, and that multiple (Hz).
  """
  frequencies, heights = tonal_line_heights(generated, sample_rate, strides,
                                            **kwargs)
  _, real_heights = tonal_line_heights(real, sample_rate, strides, **kwargs)
  return highest_line(frequencies, heights - real_heights)
