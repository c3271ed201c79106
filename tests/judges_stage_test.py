"""Tests of the judges stage (wavegan_jax/training/stages/judges.py)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import judges as judges_config
from wavegan_jax import inference
from wavegan_jax.training import checkpointing
from wavegan_jax.training import trainer
from wavegan_jax.training.stages import judges as judges_stage


def test_parse_digits():
  np.testing.assert_array_equal(
      judges_stage.parse_digits([b"3_theo_12", "0_george_0"]), [3, 0])
  with pytest.raises(ValueError, match="clip id 'theo_3' is not an FSDD"):
    judges_stage.parse_digits([b"theo_3"])


def test_augment_without_changes_is_identity_and_shift_is_a_roll():
  audio = jnp.asarray(np.random.default_rng(0).normal(size=(3, 64)),
                      jnp.float32)
  rng = jax.random.PRNGKey(0)
  same = judges_stage.augment(rng, audio, max_shift=0, min_gain_db=0.0,
                              max_gain_db=0.0, noise_std=0.0)
  np.testing.assert_allclose(same, audio, rtol=1e-6)
  shifted = np.asarray(judges_stage.augment(
      rng, audio, max_shift=5, min_gain_db=0.0, max_gain_db=0.0,
      noise_std=0.0))
  for row, original in zip(shifted, np.asarray(audio)):
    matches = [k for k in range(-5, 6)
               if np.allclose(np.roll(original, k), row, rtol=1e-6)]
    assert matches
  quieter = judges_stage.augment(rng, audio, max_shift=0,
                                 min_gain_db=-20.0, max_gain_db=-20.0,
                                 noise_std=0.0)
  np.testing.assert_allclose(quieter, 0.1 * audio, rtol=1e-5)


class _FirstSampleJudge:
  """Predicts digit = speaker = round(first sample): a judge with known output."""

  def apply(self, variables, audio):
    del variables
    predicted = jnp.round(audio[:, 0]).astype(jnp.int32)
    return {"digit_logits": jax.nn.one_hot(predicted, 10),
            "speaker_logits": jax.nn.one_hot(predicted % 6, 6)}


def test_held_out_accuracy_covers_every_clip_across_batches():
  # 250 clips: two full evaluation batches of 100 and a partial one.
  labels = np.arange(250, dtype=np.int32) % 10
  audio = np.zeros((250, 8), np.float32)
  audio[:, 0] = labels
  audio[:40, 0] = (labels[:40] + 1) % 10  # 40 wrong digits.
  clips = {"target": audio, "digit": labels, "speaker": labels % 6}
  accuracy = judges_stage.held_out_accuracy(_FirstSampleJudge(), {}, clips,
                                            "test")
  assert accuracy["test_digit_accuracy"] == pytest.approx(210 / 250)
  # Wrong digits give wrong speakers except where (d + 1) % 10 % 6 == d % 6.
  expected_speakers = 210 + sum(
      int((labels[i] + 1) % 10 % 6 == labels[i] % 6) for i in range(40))
  assert accuracy["test_speaker_accuracy"] == pytest.approx(
      expected_speakers / 250)


def test_weighted_accuracy():
  logits = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
  labels = jnp.array([0, 0, 0, 1])
  assert float(judges_stage.weighted_accuracy(
      logits, labels, jnp.ones(4))) == 0.75
  assert float(judges_stage.weighted_accuracy(
      logits, labels, jnp.array([1.0, 1.0, 0.0, 0.0]))) == 0.5


@pytest.mark.slow
def test_tiny_judges_train_and_report_test_accuracy(
    tmp_path, manual_dir, av_digits_data_dir):
  config = judges_config.get_config("tiny")
  results = trainer.train_and_evaluate(
      config, str(tmp_path), manual_dir=str(manual_dir),
      data_dir=str(av_digits_data_dir))
  final = json.loads((tmp_path / "judges" / "final_metrics.json").read_text())
  assert final["step"] == 4 and results["judges"] == final
  for key in ("test_digit_accuracy", "test_speaker_accuracy",
              "digit_accuracy", "speaker_accuracy"):
    assert 0.0 <= final[key] <= 1.0, key
  # 300 test takes: accuracies are multiples of 1/300.
  assert final["test_digit_accuracy"] * 300 == pytest.approx(
      round(final["test_digit_accuracy"] * 300), abs=1e-3)
  lines = [json.loads(line) for line in
           (tmp_path / "judges" / "metrics.jsonl").read_text().splitlines()]
  assert [line["step"] for line in lines] == [2, 4]
  judge = inference.judge_model(config)
  expected = jax.eval_shape(lambda: judge.init(
      jax.random.PRNGKey(0), jnp.zeros((1, 8192)))["params"])
  params = checkpointing.load_params(
      checkpointing.export_path(str(tmp_path), "judges"), expected)
  assert jax.tree.structure(params) == jax.tree.structure(expected)


def test_judges_config_variants():
  assert judges_config.get_config().train.num_steps == 800
  assert judges_config.get_config("tiny").judges.model.channels == (4, 8)
  with pytest.raises(ValueError, match="Unknown judges variant 'huge'"):
    judges_config.get_config("huge")
