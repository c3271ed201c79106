"""Known-answer tests of wavegan_jax.evaluation.metrics."""

import math

import numpy as np
import pytest
import scipy.linalg

from wavegan_jax import losses
from wavegan_jax.evaluation import metrics

RATE = 8000


def test_accuracy_from_logits_and_from_predictions():
  logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0],
                     [5.0, 0.0, 0.0]])
  labels = np.array([0, 1, 1, 2])
  assert metrics.accuracy(logits, labels) == 0.5
  assert metrics.accuracy(np.array([0, 1, 2, 2]), labels) == 0.75
  with pytest.raises(ValueError, match="3 predictions for 4 labels"):
    metrics.accuracy(np.array([0, 1, 2]), labels)


def test_confusion_matrix_counts():
  matrix = metrics.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
  np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])


def test_inception_score_known_answers():
  classes = 10
  # Confident and uniform over classes in every split: IS = #classes.
  labels = np.tile(np.arange(classes), 10)
  one_hot = np.eye(classes)[labels]
  mean, std = metrics.inception_score(one_hot, num_splits=10)
  assert mean == pytest.approx(classes, rel=1e-12)
  assert std == pytest.approx(0.0, abs=1e-9)
  # The same prediction for every clip: IS = 1.
  same = np.tile(np.array([[0.7, 0.2, 0.1]]), (40, 1))
  assert metrics.inception_score(same, num_splits=4)[0] == pytest.approx(1.0)
  # Two equally likely classes, each predicted with certainty: IS = 2.
  two = np.eye(3)[np.tile([0, 2], 10)]
  assert metrics.inception_score(two, num_splits=5)[0] == pytest.approx(2.0)
  with pytest.raises(ValueError, match="N >= num_splits=10"):
    metrics.inception_score(one_hot[:5])


def test_inception_entropies_known_answers_and_the_score_they_make():
  # Confident, three classes in 2:1:1: H(y|x) = 0, counts as labelled.
  labelled = np.eye(4)[[0, 0, 1, 2]]
  parts = metrics.inception_entropies(labelled)
  assert parts["conditional_entropy"] == pytest.approx(0.0, abs=1e-12)
  assert parts["marginal_entropy"] == pytest.approx(
      -(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25)))
  assert parts["class_counts"] == [2, 1, 1, 0]
  # The same unsure prediction everywhere: H(y|x) = H(y) = its entropy.
  unsure = np.tile([[0.5, 0.25, 0.25]], (6, 1))
  parts = metrics.inception_entropies(unsure)
  assert parts["conditional_entropy"] == pytest.approx(1.5 * np.log(2))
  assert parts["marginal_entropy"] == pytest.approx(1.5 * np.log(2))
  # One split's IS is exp(H(y) - H(y|x)).
  probabilities = np.random.default_rng(0).dirichlet(np.ones(10) * 0.3, 50)
  parts = metrics.inception_entropies(probabilities)
  assert np.exp(parts["marginal_entropy"] - parts["conditional_entropy"]) == (
      pytest.approx(metrics.inception_score(probabilities, 1)[0], rel=1e-9))
  assert sum(parts["class_counts"]) == 50
  with pytest.raises(ValueError, match=r"got shape \(0, 10\)"):
    metrics.inception_entropies(np.zeros((0, 10)))


def test_frechet_distance_identical_sets_is_zero():
  rng = np.random.default_rng(0)
  embeddings = rng.normal(size=(200, 8))
  assert metrics.frechet_distance(embeddings, embeddings) == pytest.approx(
      0.0, abs=1e-8)


def test_frechet_distance_equals_closed_form_of_the_sample_statistics():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(500, 3)) @ np.diag([1.0, 2.0, 0.5]) + [1.0, 0.0, 2.0]
  b = rng.normal(size=(400, 3)) * 1.5 - [0.0, 1.0, 0.0]
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  # Diagonal-ish covariances: compare with the general formula, computed
  # through the symmetric form sqrt(sqrt(Sa) Sb sqrt(Sa)).
  root_a = scipy.linalg.sqrtm(cov_a).real
  expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) +
              np.trace(cov_b) -
              2 * np.trace(scipy.linalg.sqrtm(root_a @ cov_b @ root_a).real))
  assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_two_known_gaussians():
  # N(mu_a, diag(s_a^2)) vs N(mu_b, diag(s_b^2)): the distance is
  # |mu_a - mu_b|^2 + sum (s_a - s_b)^2. Whitened samples make the sample
  # statistics exactly the population ones.
  rng = np.random.default_rng(2)
  noise = rng.normal(size=(1000, 2))
  noise -= noise.mean(0)
  noise = noise @ np.linalg.inv(np.linalg.cholesky(np.cov(noise,
                                                           rowvar=False))).T
  a = noise * [1.0, 2.0] + [0.0, 0.0]
  b = noise * [3.0, 1.0] + [1.0, 2.0]
  expected = (1.0 + 4.0) + ((1.0 - 3.0) ** 2 + (2.0 - 1.0) ** 2)
  assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
  with pytest.raises(ValueError, match="same E"):
    metrics.frechet_distance(a, b[:, :1])


def test_nearest_neighbour_distances():
  points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
  np.testing.assert_allclose(
      metrics.nearest_neighbour_distances(points, points, exclude_self=True),
      [1.0, np.sqrt(18.0), 1.0])
  np.testing.assert_allclose(
      metrics.nearest_neighbour_distances([[3.0, 0.0]], points), [3.0])


def _tone_after(onset, num_samples=4096, amplitude=0.5):
  clip = np.zeros(num_samples)
  t = np.arange(num_samples - onset) / RATE
  clip[onset:] = amplitude * np.sin(2 * np.pi * 440 * t + 0.3)
  return clip


@pytest.mark.parametrize("onset", [0, 7, 100, 1234, 3000])
def test_detect_onset_within_one_hop(onset):
  hop = 20  # 2.5 ms at 8 kHz.
  detected = metrics.detect_onset(_tone_after(onset), RATE, hop_ms=2.5)
  assert detected.shape == (1,)
  assert onset <= detected[0] <= onset + hop


def test_detect_onset_batches_and_marks_silence():
  clips = np.stack([_tone_after(500), np.zeros(4096),
                    _tone_after(2000, amplitude=0.01)])
  detected = metrics.detect_onset(clips, RATE)
  assert 500 <= detected[0] <= 520 and 2000 <= detected[2] <= 2020
  assert math.isnan(detected[1])


def test_silent_fraction_counts_quiet_frames():
  # 256-sample frames at 8 kHz: a clip of 4 frames, the first loud, the
  # second at -40 dBFS, the last two at -60 dBFS and 0.
  clip = np.concatenate([np.full(256, 0.5), np.full(256, 0.01),
                         np.full(256, 0.001), np.zeros(256)])
  assert metrics.silent_fraction(clip, RATE) == 0.5
  assert metrics.silent_fraction(clip, RATE, threshold_db=-30.0) == 0.75
  # Over a batch, a share of all frames; a trailing part frame is dropped.
  batch = np.stack([clip, np.full(1024, 0.5)])
  assert metrics.silent_fraction(batch, RATE) == 0.25
  assert metrics.silent_fraction(np.concatenate([clip, np.zeros(100)]),
                                 RATE) == 0.5
  with pytest.raises(ValueError, match="100 samples are shorter than one "
                     "32.0 ms frame"):
    metrics.silent_fraction(np.zeros(100), RATE)


def test_sync_error_ms():
  clips = np.stack([_tone_after(1024), _tone_after(512), np.zeros(4096)])
  errors, median = metrics.sync_error_ms(clips, [4, 4, 1],
                                         samples_per_frame=256,
                                         sample_rate=RATE)
  # Visual onsets at samples 1024, 1024, 256.
  assert errors[0] <= 2.5 and 512 / 8 - 2.5 <= errors[1] <= 512 / 8
  assert math.isnan(errors[2])
  assert median == pytest.approx(np.mean(errors[:2]))


def _speech_like(seed=0, num_samples=8192):
  rng = np.random.default_rng(seed)
  t = np.arange(num_samples) / RATE
  envelope = np.exp(-((t - 0.5) / 0.15) ** 2)
  pitch = 120 + 30 * np.sin(2 * np.pi * 3 * t)
  phase = 2 * np.pi * np.cumsum(pitch) / RATE
  voiced = sum(np.sin(k * phase) / k for k in range(1, 15))
  return 0.3 * envelope * voiced + 0.002 * rng.normal(size=num_samples)


def test_pesq_and_stoi_of_a_clip_against_itself():
  clean = _speech_like()
  noisy = clean + 0.05 * np.random.default_rng(3).normal(size=clean.shape)
  pesq_scores = metrics.pesq_nb(np.stack([clean, clean]),
                                np.stack([clean, noisy]))
  assert pesq_scores.num_failed == 0
  assert pesq_scores.values[0] > 4.0 > pesq_scores.values[1]
  stoi_scores = metrics.stoi(np.stack([clean, clean]),
                             np.stack([clean, noisy]), RATE)
  assert stoi_scores.values[0] == pytest.approx(1.0, abs=1e-6)
  assert stoi_scores.values[1] < stoi_scores.values[0]
  assert stoi_scores.mean == pytest.approx(np.mean(stoi_scores.values))


def test_pesq_and_stoi_give_nan_and_a_count_for_silence():
  clean = _speech_like()
  silent = np.zeros_like(clean)
  pesq_scores = metrics.pesq_nb(np.stack([clean, silent]),
                                np.stack([clean, silent]))
  assert pesq_scores.num_failed == 1 and math.isnan(pesq_scores.values[1])
  assert pesq_scores.mean == pesq_scores.values[0]
  stoi_scores = metrics.stoi(np.stack([silent, clean]),
                             np.stack([clean, np.full_like(clean, np.nan)]),
                             RATE)
  assert stoi_scores.num_failed == 2 and math.isnan(stoi_scores.mean)


def test_multi_resolution_stft_distance_matches_losses():
  rng = np.random.default_rng(4)
  a = rng.normal(size=(3, 2048)).astype(np.float32)
  b = rng.normal(size=(3, 2048)).astype(np.float32)
  distance = metrics.multi_resolution_stft_distance(a, b)
  expected = losses.multi_resolution_stft_loss(a, b)
  assert distance["total"] == pytest.approx(float(expected["total"]))
  assert metrics.multi_resolution_stft_distance(a, a)["total"] == (
      pytest.approx(0.0, abs=1e-5))
