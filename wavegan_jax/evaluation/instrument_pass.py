"""The instruments' pass of an evaluation: which clips, paired how.

`evaluate.py` calls `measure_av` or `measure_wavegan` after the judges;
each returns metrics.json entries, every generated figure beside its
`real_` twin, and `report_rows` turns them into rows of report.md. The
measures themselves live in `instruments.py`.

Cost: pYIN is the slow instrument (about 0.1 s per clip on one core), so
each set is capped at `max_clips` clips (default 300; AV: a seeded subset
of the examples, the same for generated and real; WaveGAN: the first
generated clips, whose latents are already random, and a seeded subset of
the real ones). The tonal-line measure reads every clip. A progress line
per instrument goes to stderr.
"""

import math
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np

from wavegan_jax.evaluation import instruments

DEFAULT_MAX_CLIPS = 300
DNSMOS_KEYS = ("sig", "bak", "ovrl", "p808")


def print_progress(message: str) -> None:
  """One `instruments: ...` line on stderr, flushed."""
  print(f"instruments: {message}", file=sys.stderr, flush=True)


def _finite(audio) -> tuple[np.ndarray, int]:
  """[B, N] float64 with non-finite samples zeroed; how many clips had any."""
  audio = np.asarray(audio, np.float64)
  bad = ~np.isfinite(audio)
  return np.where(bad, 0.0, audio), int(bad.any(axis=-1).sum())


def _nan_mean(values: np.ndarray) -> float:
  finite = np.isfinite(values)
  return float(np.mean(values[finite])) if finite.any() else math.nan


def subset(count: int, max_clips: Optional[int], seed: int) -> np.ndarray:
  """Sorted indices of at most max_clips of count (all when None)."""
  if max_clips is None or max_clips >= count:
    return np.arange(count)
  return np.sort(np.random.default_rng(seed).permutation(count)[:max_clips])


def _unpaired(name: str, audio: np.ndarray, sample_rate: int,
              recogniser: instruments.DigitRecogniser,
              progress: Callable[[str], None]):
  """DNSMOS, pYIN, flatness and ASR of one set; (results, track, digits)."""
  prefix = "" if name == "generated" else "real_"
  progress(f"DNSMOS of {len(audio)} {name} clips (groups of "
           f"{instruments.DNSMOS_GROUP})")
  scores = instruments.dnsmos(audio, sample_rate)
  results = {f"{prefix}dnsmos_{key}": scores[key] for key in DNSMOS_KEYS}
  progress(f"pYIN, flatness and PocketSphinx on {len(audio)} {name} clips")
  track = instruments.pitch_track(audio, sample_rate)
  results[f"{prefix}voiced_share"] = instruments.voiced_share(track)
  results[f"{prefix}f0_range_cents"] = instruments.f0_range_cents(track)
  results[f"{prefix}spectral_flatness"] = instruments.spectral_flatness(
      audio, sample_rate)
  return results, track, recogniser(audio, sample_rate)


def measure_av(generated, real, floor_partners, digits, sample_rate: int, *,
               max_clips: Optional[int] = DEFAULT_MAX_CLIPS, seed: int = 0,
               progress: Callable[[str], None] = print_progress) -> dict:
  """The instruments on generated clips and their paired real targets.

  Args:
    generated: [B, N] generated audio.
    real: [B, N] the paired real targets.
    floor_partners: [B, N'] for each target another real take of the same
      digit and speaker (the MCD floor); a row of zeros where there is none
      (its MCD is NaN and left out).
    digits: [B] the digit each example shows.
    sample_rate: in Hz.
    max_clips: at most this many examples are measured (None: all).
    seed: seed of that subset.
    progress: called with one line per instrument.

  Returns:
    metrics.json entries: dnsmos_{sig,bak,ovrl,p808}, voiced_share,
    f0_range_cents, spectral_flatness and asr_digit_accuracy, each with its
    real_ twin;
    vuv_f1, f0_error_cents, mcd_db with mcd_db_real_floor; the clips
    measured, the clips MCD could not score, the clips with non-finite
    samples (zeroed) and the pass's seconds.
  """
  start = time.time()
  keep = subset(len(generated), max_clips, seed)
  generated, nonfinite = _finite(np.asarray(generated)[keep])
  real, _ = _finite(np.asarray(real)[keep])
  partners, _ = _finite(np.asarray(floor_partners)[keep])
  digits = np.asarray(digits).reshape(-1)[keep]
  recogniser = instruments.DigitRecogniser()
  results = {"instrument_clips": len(keep),
             "instrument_nonfinite_clips": nonfinite}
  generated_results, generated_track, heard = _unpaired(
      "generated", generated, sample_rate, recogniser, progress)
  real_results, real_track, real_heard = _unpaired(
      "real", real, sample_rate, recogniser, progress)
  progress(f"mel-cepstral distortion of {len(keep)} pairs and their floor")
  mcd = instruments.mel_cepstral_distortion(generated, real, sample_rate)
  floor = instruments.mel_cepstral_distortion(partners, real, sample_rate)
  results.update(
      generated_results, **real_results,
      vuv_f1=instruments.vuv_f1(generated_track, real_track),
      f0_error_cents=instruments.f0_error_cents(generated_track, real_track),
      mcd_db=_nan_mean(mcd), mcd_failed=int(np.sum(~np.isfinite(mcd))),
      mcd_db_real_floor=_nan_mean(floor),
      mcd_real_floor_failed=int(np.sum(~np.isfinite(floor))),
      asr_digit_accuracy=float(np.mean(heard == digits)),
      real_asr_digit_accuracy=float(np.mean(real_heard == digits)),
      instrument_seconds=round(time.time() - start, 1))
  progress(f"done in {results['instrument_seconds']:.0f} s")
  return results


def measure_wavegan(generated, real, judged_digits, real_judged_digits,
                    sample_rate: int, strides: Sequence[int], *,
                    max_clips: Optional[int] = DEFAULT_MAX_CLIPS,
                    seed: int = 0,
                    progress: Callable[[str], None] = print_progress
                    ) -> dict:
  """The instruments on unconditional clips and on the real clips.

  There is no target digit, so `asr_digit_accuracy` is the share of clips
  where PocketSphinx hears the digit the project's judge hears (its real_
  twin: the same agreement on real clips, the ceiling).

  Args:
    generated: [B, N] generated audio (latents already random: the first
      max_clips are measured).
    real: [B', N] real clips as the loader holds them.
    judged_digits: [B] the digit judge's argmax on the generated clips.
    real_judged_digits: [B'] the same on the real clips.
    sample_rate: in Hz.
    strides: the generator's upsampling strides, last layer first (the
      tonal-line families: sample_rate / prod(strides[:k])).
    max_clips: at most this many clips of each set (None: all).
    seed: seed of the real subset.
    progress: called with one line per instrument.

  Returns:
    metrics.json entries: dnsmos_{sig,bak,ovrl,p808}, voiced_share,
    f0_range_cents, spectral_flatness, asr_digit_accuracy, tonal_line_db and
    tonal_line_hz, each with its real_ twin; tonal_line_excess_db and _hz
    (the largest height above the real clips' at the same multiple) and
    tonal_line_excess_real_floor_db (one half of the real clips against the
    other); the clips measured and the pass's seconds.
  """
  start = time.time()
  generated, nonfinite = _finite(generated)
  real, _ = _finite(real)
  progress(f"tonal lines in the mean spectrum of {len(generated)} generated "
           f"and {len(real)} real clips")
  # One Welch spectrum per set serves the highest line and the excess.
  frequencies, heights = instruments.tonal_line_heights(
      generated, sample_rate, strides)
  _, real_heights = instruments.tonal_line_heights(real, sample_rate, strides)
  tonal = instruments.highest_line(frequencies, heights)
  real_tonal = instruments.highest_line(frequencies, real_heights)
  excess = instruments.highest_line(frequencies, heights - real_heights)
  # The excess of one half of the real clips over the other: how far the
  # measure moves with nothing added (150 against 150 FSDD takes: 2-4 dB).
  halves = np.array_split(np.random.default_rng(seed).permutation(len(real)),
                          2)
  excess_floor = (instruments.tonal_line_excess_db(
      real[halves[0]], real[halves[1]], sample_rate, strides)
                  if len(real) >= 2 else (math.nan, math.nan))
  keep = np.arange(len(generated) if max_clips is None
                   else min(len(generated), max_clips))
  real_keep = subset(len(real), max_clips, seed)
  recogniser = instruments.DigitRecogniser()
  generated_results, _, heard = _unpaired(
      "generated", generated[keep], sample_rate, recogniser, progress)
  real_results, _, real_heard = _unpaired(
      "real", real[real_keep], sample_rate, recogniser, progress)
  judged_digits = np.asarray(judged_digits).reshape(-1)[keep]
  real_judged_digits = np.asarray(real_judged_digits).reshape(-1)[real_keep]
  results = {"instrument_clips": len(keep),
             "real_instrument_clips": len(real_keep),
             "instrument_nonfinite_clips": nonfinite,
             **generated_results, **real_results,
             "asr_digit_accuracy": float(np.mean(heard == judged_digits)),
             "real_asr_digit_accuracy": float(
                 np.mean(real_heard == real_judged_digits)),
             "tonal_line_db": tonal[0], "tonal_line_hz": tonal[1],
             "real_tonal_line_db": real_tonal[0],
             "real_tonal_line_hz": real_tonal[1],
             "tonal_line_excess_db": excess[0],
             "tonal_line_excess_hz": excess[1],
             "tonal_line_excess_real_floor_db": excess_floor[0],
             "instrument_seconds": round(time.time() - start, 1)}
  progress(f"done in {results['instrument_seconds']:.0f} s")
  return results


def report_rows(results: dict) -> list[tuple[str, object, object]]:
  """(name, generated, real) rows of report.md for the instruments' keys."""
  if "instrument_clips" not in results:
    return []
  r = results
  rows = [(f"DNSMOS P.835 {key.upper()} (16 kHz, clips in groups of "
           f"{instruments.DNSMOS_GROUP})", r[f"dnsmos_{key}"],
           r[f"real_dnsmos_{key}"]) for key in ("sig", "bak", "ovrl")]
  rows += [
      ("DNSMOS P.808 MOS", r["dnsmos_p808"], r["real_dnsmos_p808"]),
      ("share of loud frames pYIN calls voiced", r["voiced_share"],
       r["real_voiced_share"]),
      ("pitch movement in a clip, cents (p10-p90 of voiced F0, median)",
       r["f0_range_cents"], r["real_f0_range_cents"]),
      ("spectral flatness of loud frames (median)", r["spectral_flatness"],
       r["real_spectral_flatness"])]
  if "vuv_f1" in r:
    rows += [
        ("PocketSphinx digit accuracy (10-word grammar)",
         r["asr_digit_accuracy"], r["real_asr_digit_accuracy"]),
        ("V/UV F1 vs target (pYIN)", r["vuv_f1"], None),
        ("F0 error vs target, median cents", r["f0_error_cents"], None),
        ("MCD vs target, dB (real: another take of the same digit and "
         "speaker)", r["mcd_db"], r["mcd_db_real_floor"])]
  else:
    rows += [
        ("PocketSphinx agrees with the digit judge", r["asr_digit_accuracy"],
         r["real_asr_digit_accuracy"]),
        ("highest tonal line at the upsampling's multiples, dB",
         r["tonal_line_db"], r["real_tonal_line_db"]),
        ("its frequency, Hz", r["tonal_line_hz"], r["real_tonal_line_hz"])]
    if "tonal_line_excess_db" in r:
      rows += [(f"largest line height above the real clips' at the same "
                f"multiple ({r['tonal_line_excess_hz']:g} Hz), dB (real: "
                f"one half of them against the other)",
                r["tonal_line_excess_db"],
                r.get("tonal_line_excess_real_floor_db"))]
  return rows


def report_note(results: dict) -> list[str]:
  """The lines under the instruments' table saying how they were measured."""
  if "instrument_clips" not in results:
    return ["Instruments (DNSMOS, pYIN, PocketSphinx) skipped "
            "(--instruments=false).", ""]
  r = results
  lines = [
      f"Instruments on {r['instrument_clips']} clips of each set, in "
      f"{r['instrument_seconds']:.0f} s (docs/instruments.md says how each "
      "is measured). Loud frames: 64 ms frames every 16 ms (8 kHz) above "
      f"{instruments.LOUD_FLOOR_DB:g} dBFS and within "
      f"{instruments.LOUD_RANGE_DB:g} dB of the clip's loudest. DNSMOS joins "
      f"{instruments.DNSMOS_GROUP} clips into one 9.01 s window."]
  if "vuv_f1" in r:
    lines.append(f"Pairs MCD could not score (a clip without loud frames): "
                 f"{r['mcd_failed']}; floor: {r['mcd_real_floor_failed']}.")
  else:
    lines.append(
        f"Real clips measured: {r['real_instrument_clips']}. The tonal line "
        "is the mean Welch spectrum's peak (+-1 bin) at each multiple of "
        "sample_rate / s1, / (s1 s2), / (s1 s2 s3) (the generator's last "
        "three strides) minus the median of +-50 Hz around it (leaving out "
        "+-3 bins), over all clips.")
  if r["instrument_nonfinite_clips"]:
    lines.append(f"Generated clips with non-finite samples (zeroed for the "
                 f"instruments): {r['instrument_nonfinite_clips']}.")
  return [" ".join(lines), ""]
