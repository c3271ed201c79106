"""Tests of wavegan_jax.evaluation.instruments and instrument_pass.

Real speech: FSDD test takes (0-4) read from the manual dir, padded or
cropped to 8192 samples as the loaders hold them.
"""

import numpy as np
import pytest
import soundfile

from wavegan_jax.evaluation import instrument_pass
from wavegan_jax.evaluation import instruments

RATE = 8000
LENGTH = 8192


def _fsdd(manual_dir, names):
  clips = np.zeros((len(names), LENGTH))
  for row, name in enumerate(names):
    audio, rate = soundfile.read(manual_dir / "fsdd" / "recordings"
                                 / f"{name}.wav")
    assert rate == RATE
    clips[row, :min(LENGTH, len(audio))] = audio[:LENGTH]
  return clips


@pytest.fixture(scope="module")
def speech(manual_dir):
  """(clips [20, 8192], digits [20]): two test takes of each digit."""
  speakers = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
  names = [f"{digit}_{speakers[(digit + take) % 6]}_{take}"
           for digit in range(10) for take in (0, 3)]
  return _fsdd(manual_dir, names), np.repeat(np.arange(10), 2)


def _harmonic_tone(f0, count=4, seconds=LENGTH / RATE):
  time = np.arange(int(seconds * RATE)) / RATE
  tone = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * time) for k in range(1, 6))
  return np.repeat(tone[None], count, axis=0)


def _noise(count=8, scale=0.1, seed=0):
  return np.random.default_rng(seed).normal(0.0, scale, (count, LENGTH))


def test_dnsmos_scores_speech_above_white_noise(speech):
  clips, _ = speech
  real = instruments.dnsmos(clips[:8], RATE)
  noise = instruments.dnsmos(_noise(), RATE)
  assert real["num_groups"] == noise["num_groups"] == 1
  # Measured: speech OVRL 2.50, SIG 2.90; white noise 1.11, 1.17.
  assert real["ovrl"] > noise["ovrl"] + 1.0
  assert real["sig"] > noise["sig"] + 1.0
  for key in ("sig", "bak", "ovrl", "p808"):
    assert 1.0 <= real[key] <= 5.0, key


def test_dnsmos_groups_clips_and_takes_silence():
  # 9 clips: a group of 8 and a group of 1 (tiled to the window).
  scores = instruments.dnsmos(np.zeros((9, LENGTH)), RATE)
  assert scores["num_groups"] == 2
  assert all(np.isfinite(scores[key]) for key in ("sig", "bak", "ovrl"))
  with pytest.raises(ValueError, match="group_size must be >= 1, got 0"):
    instruments.dnsmos(np.zeros((2, LENGTH)), RATE, group_size=0)


def test_voiced_share_of_a_tone_and_of_noise():
  tone = instruments.pitch_track(_harmonic_tone(150.0), RATE)
  noise = instruments.pitch_track(_noise(4), RATE)
  assert instruments.voiced_share(tone) > 0.95
  assert instruments.voiced_share(noise) < 0.1
  # pYIN's F0 of the 150 Hz tone, within 10 cents, on voiced frames.
  assert np.all(np.abs(1200 * np.log2(tone.f0[tone.voiced] / 150.0)) < 10)
  frames = 1 + LENGTH // instruments.pitch_frame_grid(RATE)[1]
  assert tone.f0.shape == tone.voiced.shape == tone.loud.shape == (4, frames)


def _glide(f0_start, octaves, count=2):
  """Harmonic tone whose F0 rises exponentially by `octaves` over the clip."""
  time = np.arange(LENGTH) / RATE
  duration = LENGTH / RATE
  # Phase of f(t) = f0_start 2^(octaves t / T): its integral times 2 pi.
  rate = octaves / duration
  phase = 2 * np.pi * f0_start * (2 ** (rate * time) - 1) / (rate * np.log(2))
  tone = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
  return np.repeat(tone[None], count, axis=0)


def test_f0_range_of_a_glide_and_of_a_steady_tone():
  steady = instruments.pitch_track(_harmonic_tone(150.0, count=2), RATE)
  assert instruments.f0_range_cents(steady) < 10.0
  # One octave in cents linear in time: p10 to p90 spans 0.8 of 1200
  # cents (a frame or two at the ends is lost to pYIN's edges).
  glide = instruments.pitch_track(_glide(120.0, 1.0), RATE)
  assert abs(instruments.f0_range_cents(glide) - 960.0) < 40.0
  # Clips with fewer voiced loud frames than min_frames are left out.
  frames = glide.f0.shape[1]
  assert np.isnan(instruments.f0_range_cents(glide, min_frames=frames + 1))


def test_silence_has_no_loud_frames_and_no_voicing_figures():
  silent = instruments.pitch_track(np.zeros((2, LENGTH)), RATE)
  assert not silent.loud.any() and not silent.voiced.any()
  assert np.isnan(instruments.voiced_share(silent))
  assert np.isnan(instruments.spectral_flatness(np.zeros((2, LENGTH)), RATE))
  assert np.isnan(instruments.vuv_f1(silent, silent))
  assert np.isnan(instruments.f0_error_cents(silent, silent))
  assert np.isnan(instruments.f0_range_cents(silent))


def test_loud_frames_follow_both_thresholds():
  levels = np.array([[-10.0, -35.0, -39.0, -41.0, -60.0],
                     [-45.0, -50.0, -54.0, -56.0, -80.0],
                     [-56.0, -60.0, -70.0, -80.0, -90.0]])
  # Above -55 dBFS and within 30 dB of the clip's loudest frame.
  np.testing.assert_array_equal(
      instruments.loud_frames(levels),
      [[True, True, True, False, False], [True, True, True, False, False],
       [False] * 5])
  # Within 30 dB of the loudest: -10 - 30 = -40 keeps -39, not -41.
  np.testing.assert_array_equal(
      instruments.loud_frames(np.array([[-5.0, -34.0, -36.0]])),
      [[True, True, False]])


def test_spectral_flatness_of_noise_above_a_tone():
  noise = instruments.spectral_flatness(_noise(4), RATE)
  tone = instruments.spectral_flatness(_harmonic_tone(150.0), RATE)
  assert noise > 0.3 and tone < 1e-3 and noise > 100 * tone


def test_voicing_against_a_paired_reference(speech):
  clips, _ = speech
  track = instruments.pitch_track(clips[:6], RATE)
  assert instruments.vuv_f1(track, track) == 1.0
  assert instruments.f0_error_cents(track, track) == 0.0
  low = instruments.pitch_track(_harmonic_tone(150.0, 2), RATE)
  high = instruments.pitch_track(_harmonic_tone(300.0, 2), RATE)
  assert instruments.f0_error_cents(high, low) == pytest.approx(1200.0,
                                                                abs=15.0)
  assert instruments.vuv_f1(high, low) > 0.95
  with pytest.raises(ValueError, match="vuv_f1: tracks of shapes"):
    instruments.vuv_f1(low, track)


def test_mcd_is_zero_for_identical_clips_and_symmetric(speech):
  clips, _ = speech
  np.testing.assert_array_equal(
      instruments.mel_cepstral_distortion(clips[:4], clips[:4], RATE), 0.0)
  forward = instruments.mel_cepstral_distortion(clips[:4], clips[4:8], RATE)
  backward = instruments.mel_cepstral_distortion(clips[4:8], clips[:4], RATE)
  np.testing.assert_allclose(forward, backward, rtol=1e-9)
  assert np.all((forward > 1.0) & (forward < 30.0))
  silent = instruments.mel_cepstral_distortion(np.zeros((2, LENGTH)),
                                               clips[:2], RATE)
  assert np.all(np.isnan(silent))


def test_mcd_follows_the_formula_on_stationary_tones():
  # Two steady tones of the same length: the frame-by-frame (diagonal)
  # MCD of the standard formula bounds the DTW mean from above (the DTW
  # path costs at most the diagonal's sum over at least as many steps), and
  # steady frames leave DTW little to gain.
  a = instruments.mel_cepstra(_harmonic_tone(150.0, 1), RATE)[0]
  b = instruments.mel_cepstra(_harmonic_tone(200.0, 1), RATE)[0]
  assert a.shape == b.shape == (1 + LENGTH // 64, 12)
  mcd = instruments.mel_cepstral_distortion(
      _harmonic_tone(150.0, 1), _harmonic_tone(200.0, 1), RATE)[0]
  diagonal = 10 / np.log(10) * np.sqrt(2 * np.sum((a - b) ** 2, axis=-1))
  assert 0.8 * np.mean(diagonal) < mcd <= np.mean(diagonal) + 1e-9


def test_asr_hears_most_fsdd_digits(speech):
  clips, digits = speech
  heard = instruments.DigitRecogniser()(clips, RATE)
  assert heard.shape == (20,)
  # Measured 0.55 on these 20 takes (0.76 over the 300 test takes).
  assert np.mean(heard == digits) >= 0.45


def test_asr_names_silence_and_refuses_empty_input():
  recogniser = instruments.DigitRecogniser()
  np.testing.assert_array_equal(recogniser(np.zeros((2, LENGTH)), RATE),
                                [-1, -1])
  with pytest.raises(ValueError, match=r"DigitRecogniser: expected audio .* "
                     r"got shape \(2, 0\)"):
    recogniser(np.zeros((2, 0)), RATE)
  with pytest.raises(ValueError, match="non-finite"):
    recogniser(np.full((1, LENGTH), np.nan), RATE)


def test_tonal_line_finds_a_sinusoid_at_2000_hz_and_not_in_noise():
  noise = _noise(20)
  time = np.arange(LENGTH) / RATE
  line = noise + 0.02 * np.sin(2 * np.pi * 2000.0 * time)
  height, frequency = instruments.tonal_line_db(line, RATE)
  assert height >= 6.0 and frequency == 2000.0
  assert instruments.tonal_line_db(noise, RATE)[0] <= 3.0
  # A line at 145 Hz is off every multiple of 8000 / 64 = 125 Hz.
  off = noise + 0.02 * np.sin(2 * np.pi * 145.0 * time)
  assert instruments.tonal_line_db(off, RATE)[0] <= 3.0
  with pytest.raises(ValueError, match="shorter than n_fft=2048"):
    instruments.tonal_line_db(noise[:, :1000], RATE)


def test_tonal_line_excess_counts_only_lines_the_real_clips_lack():
  time = np.arange(LENGTH) / RATE
  speech_like = _noise(20) + 0.02 * np.sin(2 * np.pi * 125.0 * time)
  real = _noise(20, seed=1) + 0.02 * np.sin(2 * np.pi * 125.0 * time)
  # The 125 Hz line is in both: its height stands out, its excess does not.
  assert instruments.tonal_line_db(speech_like, RATE)[0] >= 6.0
  excess, _ = instruments.tonal_line_excess_db(speech_like, real, RATE)
  assert excess <= 3.0
  # A 2000 Hz line only in the generated clips: excess as its height.
  checker = speech_like + 0.02 * np.sin(2 * np.pi * 2000.0 * time)
  excess, frequency = instruments.tonal_line_excess_db(checker, real, RATE)
  height_2000 = dict(zip(*instruments.tonal_line_heights(checker, RATE)))
  assert frequency == 2000.0 and excess >= 6.0
  assert excess == pytest.approx(
      height_2000[2000.0]
      - dict(zip(*instruments.tonal_line_heights(real, RATE)))[2000.0])
  frequencies, _ = instruments.tonal_line_heights(real, RATE)
  # Multiples of 125 Hz below 4000 Hz, each once.
  np.testing.assert_array_equal(frequencies, np.arange(1, 32) * 125.0)


def test_measure_av_writes_every_key_with_its_real_twin(speech):
  clips, digits = speech
  generated = np.concatenate([clips[10:13], np.zeros((1, LENGTH))])
  generated[1, 5] = np.nan
  progress = []
  results = instrument_pass.measure_av(
      generated, clips[:4], clips[4:8], digits[:4], RATE,
      progress=progress.append)
  for key in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808",
              "voiced_share", "f0_range_cents", "spectral_flatness",
              "asr_digit_accuracy"):
    assert np.isfinite(results[key]) and np.isfinite(results["real_" + key])
  assert results["instrument_clips"] == 4
  assert results["instrument_nonfinite_clips"] == 1
  assert results["mcd_failed"] == 1  # The silent clip.
  assert results["mcd_real_floor_failed"] == 0
  assert 0.0 < results["vuv_f1"] <= 1.0
  assert results["f0_error_cents"] >= 0.0
  assert results["mcd_db"] > 0.0 and results["mcd_db_real_floor"] > 0.0
  assert progress[-1].startswith("done in")
  rows = instrument_pass.report_rows(results)
  assert len(rows) == 11 and all(len(row) == 3 for row in rows)


def test_level_where_target_is_silent_measures_the_floor_around_a_word():
  frames, frame = 8, 100
  target = np.zeros((2, frames * frame))
  target[:, 200:400] = 0.5  # The word: frames 2-3; the rest is silent.
  generated = target.copy()
  generated[0] += 0.5 * 10 ** (-30 / 20)  # A -30 dB floor (re the word).
  generated[1, 200:400] *= 2.0  # Louder word, clean silence.
  measured = instruments.level_where_target_is_silent(generated, target,
                                                      frame)
  assert measured["silence_frames"] == 2 * 6
  # Clip 0: silent frames at -30 dB re its peak (whose level the floor
  # raises slightly); clip 1: exact zeros, floored at -200 dB re 1.
  levels = np.array([20 * np.log10(0.5 * 10 ** (-30 / 20)
                                   / (0.5 + 0.5 * 10 ** (-30 / 20)))] * 6
                    + [-200.0 - 20 * np.log10(1.0)] * 6)
  assert measured["silence_level_db"] == pytest.approx(np.median(levels),
                                                       abs=1e-6)
  assert measured["silence_audible_share"] == pytest.approx(0.5)


def test_level_where_target_is_silent_rejects_bad_shapes():
  with pytest.raises(ValueError, match="must have one shape"):
    instruments.level_where_target_is_silent(np.zeros((2, 800)),
                                             np.zeros((2, 700)), 100)
  with pytest.raises(ValueError, match="shorter than one frame"):
    instruments.level_where_target_is_silent(np.zeros((1, 50)),
                                             np.zeros((1, 50)), 100)
