"""End-to-end tests of launch/evaluate.py and wavegan_jax.evaluation.evaluate.

One module-scoped run trains av_digits:tiny and judges:tiny side by side
(workdirs <tmp>/av and <tmp>/judges, so the default judges dir W/../judges
is exercised); the evaluation then uses 16 examples.
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from experiments import av_digits as av_digits_config
from experiments import judges as judges_config
from experiments import wavegan as wavegan_config
from tests.conftest import assert_trees_equal
from tests.conftest import load_launch_script
from tests.conftest import tiny_specgan_config
from wavegan_jax import errors
from wavegan_jax.evaluation import evaluate
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import metrics as metrics_lib
from wavegan_jax.training import checkpointing
from wavegan_jax.training import export
from wavegan_jax.training import trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
AV_KEYS = {
    "digit_accuracy", "speaker_accuracy", "sync_error_ms_median", "fad",
    "fad_real_floor", "inception_score", "real_inception_score", "pesq",
    "stoi", "real_digit_accuracy", "real_speaker_accuracy", "num_examples",
    "sync_undetected", "real_sync_error_ms_median", "inception_score_std",
    "real_inception_score_std", "inception_splits", "pesq_failed",
    "stoi_failed", "stft_distance", "split", "judges_workdir",
    "reference_digit_rate", "real_reference_digit_rate",
    "silence_level_db", "silence_audible_share", "silence_frames"}
# The instruments' keys (instrument_pass.py), each unpaired one with its
# real_ twin.
INSTRUMENT_KEYS = {
    "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808",
    "voiced_share", "f0_range_cents", "spectral_flatness",
    "asr_digit_accuracy"}
AV_INSTRUMENT_KEYS = (
    INSTRUMENT_KEYS | {"real_" + key for key in INSTRUMENT_KEYS}
    | {"vuv_f1", "f0_error_cents", "mcd_db", "mcd_db_real_floor",
       "mcd_failed", "mcd_real_floor_failed", "instrument_clips",
       "instrument_nonfinite_clips", "instrument_seconds"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, manual_dir, av_digits_data_dir):
  """(runs dir, data dir): tiny AV run in runs/av, judges in runs/judges."""
  runs = tmp_path_factory.mktemp("runs")
  for name, config in (("av", av_digits_config.get_config("tiny")),
                       ("judges", judges_config.get_config("tiny"))):
    trainer.train_and_evaluate(config, str(runs / name),
                               manual_dir=str(manual_dir),
                               data_dir=str(av_digits_data_dir))
  return runs, av_digits_data_dir


@pytest.fixture(scope="module")
def av_results(trained, manual_dir):
  runs, data_dir = trained
  results = evaluate.evaluate(str(runs / "av"), num_examples=16,
                              manual_dir=str(manual_dir),
                              data_dir=str(data_dir), batch_size=8)
  return runs / "av" / "eval", results


def test_av_metrics_json_has_every_key(av_results):
  eval_dir, results = av_results
  written = json.loads((eval_dir / "metrics.json").read_text())
  assert written == results
  assert set(written) == AV_KEYS | AV_INSTRUMENT_KEYS
  assert written["instrument_clips"] == 16
  for key in ("dnsmos_sig", "dnsmos_ovrl", "real_dnsmos_sig",
              "real_dnsmos_ovrl"):
    assert 1.0 <= written[key] <= 5.0, key
  # Real targets: speech, mostly voiced, and a floor MCD for every one
  # (each test take has four other takes of its digit and speaker).
  assert 0.3 < written["real_voiced_share"] <= 1.0
  # Their pitch moves (all 300 test takes: a median range of 227 cents).
  assert written["real_f0_range_cents"] > 50.0
  assert written["mcd_real_floor_failed"] == 0
  assert written["mcd_db_real_floor"] > 0.0
  assert 0.0 <= written["real_asr_digit_accuracy"] <= 1.0
  for key in ("vuv_f1", "f0_error_cents", "mcd_db", "voiced_share",
              "spectral_flatness"):
    assert written[key] is None or written[key] >= 0.0, key
  assert written["num_examples"] == 16 and written["split"] == "test"
  assert written["inception_splits"] == 10
  for key in ("digit_accuracy", "speaker_accuracy", "real_digit_accuracy",
              "real_speaker_accuracy"):
    assert 0.0 <= written[key] <= 1.0 and written[key] * 16 == int(
        written[key] * 16), key
  for key in ("fad", "fad_real_floor", "stft_distance"):
    assert np.isfinite(written[key]) and written[key] >= -1e-6, key
  # Every test clip has silence around its word; levels are re the peak.
  assert written["silence_frames"] > 16
  assert -200.0 <= written["silence_level_db"] <= 0.0
  assert 0.0 <= written["silence_audible_share"] <= 1.0
  for key in ("inception_score", "real_inception_score"):
    assert 1.0 - 1e-9 <= written[key] <= 10.0, key
  # The reference is always another digit than the target, so no clip can
  # be heard as both (this fails if the reference digit is parsed wrongly).
  assert written["reference_digit_rate"] + written["digit_accuracy"] <= 1.0
  assert (written["real_reference_digit_rate"]
          + written["real_digit_accuracy"] <= 1.0)
  # Real targets start at the visual onset: their sync error is small.
  assert 0.0 <= written["real_sync_error_ms_median"] < 200.0
  assert written["sync_undetected"] + written["pesq_failed"] >= 0
  for key in ("pesq", "stoi", "sync_error_ms_median"):
    assert written[key] is None or np.isfinite(written[key]), key
  assert written["judges_workdir"] == str(eval_dir.parent.parent / "judges")


def test_av_report_links_images_and_wavs_that_exist(av_results):
  eval_dir, results = av_results
  report = (eval_dir / "report.md").read_text()
  links = re.findall(r"\]\(([^)]+)\)", report)
  images = [link for link in links if link.endswith(".png")]
  wavs = [link for link in links if link.endswith(".wav")]
  assert set(images) == {"confusion_matrix.png", "spectrograms.png"}
  assert len(wavs) == 12  # 4 examples x generated, real, reference.
  for link in links:
    assert (eval_dir / link).stat().st_size > 100, link
  import soundfile  # pylint: disable=g-import-not-at-top
  audio, rate = soundfile.read(eval_dir / wavs[0])
  assert rate == 8000 and audio.shape == (8192,)
  assert f"| digit accuracy | {results['digit_accuracy']:.4g} |" in report
  assert (f"| DNSMOS P.808 MOS | {results['dnsmos_p808']:.4g} | "
          f"{results['real_dnsmos_p808']:.4g} |") in report


def _assert_each_exits_2_with_one_line(processes, expected_starts):
  """Each process ends with status 2 and one `error: ...` line, last."""
  for name, process in processes.items():
    _, stderr = process.communicate(timeout=300)
    # TensorFlow's C++ start-up lines (oneDNN notice) may come first.
    errors = [line for line in stderr.splitlines()
              if line.startswith("error:")]
    assert process.returncode == 2, (name, stderr)
    assert len(errors) == 1 and errors[0].startswith(
        expected_starts[name]), (name, stderr)
    assert stderr.rstrip().endswith(errors[0])
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def tiny_wavegan(trained, tmp_path_factory, manual_dir):
  """A trained wavegan:tiny workdir; each test's evaluation rewrites W/eval."""
  workdir = tmp_path_factory.mktemp("wavegan")
  trainer.train_and_evaluate(wavegan_config.get_config("tiny"),
                             str(workdir), manual_dir=str(manual_dir),
                             data_dir=str(trained[1]))
  return workdir


def _run_evaluate(*flags):
  return subprocess.Popen(
      [sys.executable, str(REPO / "launch" / "evaluate.py"), *flags],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_bad_input_exits_2_with_one_line(trained, tmp_path, manual_dir):
  runs, data_dir = trained
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  shutil.copy(runs / "av" / "config.json", untrained / "config.json")
  common = [f"--manual_dir={manual_dir}", f"--data_dir={data_dir}"]
  cases = {
      "no generator": (
          [f"--workdir={untrained}", f"--judges_workdir={runs / 'judges'}"],
          f"error: {untrained / 'generator' / 'export'}: no trained "
          f"generator (train the generator stage first"),
      "no judges": (
          [f"--workdir={runs / 'av'}", f"--judges_workdir={tmp_path}"],
          f"error: no trained judges export at "
          f"{tmp_path / 'judges' / 'export'}; train the judges first"),
      "unknown split": (
          [f"--workdir={runs / 'av'}", "--split=validation",
           "--num_examples=4"],
          "error: unknown split 'validation'; av_digits has "
          "['test', 'train']"),
      "missing workdir": (
          [f"--workdir={tmp_path / 'nowhere'}"],
          f"error: workdir {tmp_path / 'nowhere'} does not exist"),
  }
  # All at once: most of each run is starting Python and importing JAX.
  _assert_each_exits_2_with_one_line(
      {name: _run_evaluate(*flags, *common)
       for name, (flags, _) in cases.items()},
      {name: expected for name, (_, expected) in cases.items()})


def test_wavegan_workdir_reports_inception_and_diversity(
    trained, tiny_wavegan, manual_dir):
  runs, data_dir = trained
  workdir = tiny_wavegan
  results = evaluate.evaluate(str(workdir), num_examples=12,
                              judges_workdir=str(runs / "judges"),
                              manual_dir=str(manual_dir),
                              data_dir=str(data_dir), batch_size=6,
                              instrument_clips=8)
  written = json.loads((workdir / "eval" / "metrics.json").read_text())
  assert written == results
  assert written["num_examples"] == 12
  # The instruments on 8 clips of each set, tonal lines on all.
  for key in INSTRUMENT_KEYS | {"tonal_line_db", "tonal_line_hz"}:
    assert key in written and "real_" + key in written, key
  assert written["instrument_clips"] == written["real_instrument_clips"] == 8
  assert 1.0 <= written["real_dnsmos_ovrl"] <= 5.0
  # 8192 samples come from five stride-4 layers: lines at multiples of
  # 2000, 500 or 125 Hz.
  assert written["tonal_line_hz"] % 125 == 0
  assert written["real_tonal_line_hz"] % 125 == 0
  assert written["tonal_line_excess_hz"] % 125 == 0
  assert np.isfinite(written["tonal_line_excess_db"])
  assert np.isfinite(written["tonal_line_excess_real_floor_db"])
  assert written["num_real_examples"] == 300  # FSDD test takes, 1 slice each.
  assert written["inception_splits"] == 10
  for key in ("inception_score", "real_inception_score"):
    assert 1.0 - 1e-9 <= written[key] <= 10.0
  # Fewer generated clips than real ones: the matched score is the same.
  assert written["inception_score_matched_examples"] == 12
  assert written["inception_score_matched"] == written["inception_score"]
  assert sum(written["digit_counts"]) == 12
  assert sum(written["real_digit_counts"]) == 300
  # Entropies over ten digits lie in [0, log 10].
  for prefix in ("", "real_"):
    assert 0.0 <= written[prefix + "conditional_entropy"] <= np.log(10)
    assert 0.0 <= written[prefix + "marginal_entropy"] <= np.log(10) + 1e-9
  # FSDD's test clips: a word, then silence (zero padding) to 1.024 s.
  assert 0.5 < written["real_silent_fraction"] < 0.7
  assert 0.0 <= written["silent_fraction"] <= 1.0
  for key in ("nn_train_distance", "nn_self_distance",
              "real_nn_train_distance", "real_nn_self_distance"):
    assert np.isfinite(written[key]) and written[key] >= 0.0, key
  report = (workdir / "eval" / "report.md").read_text()
  for link in re.findall(r"\]\(([^)]+)\)", report):
    assert (workdir / "eval" / link).is_file(), link


def test_wavegan_latent_scale_scales_the_latents_and_writes_beside(
    trained, tiny_wavegan, manual_dir, monkeypatch):
  runs, data_dir = trained
  workdir = tiny_wavegan
  seen = []
  generate = generate_lib.WaveGANGenerator.generate

  def recording_generate(self, latents, batch_size=16):
    seen.append(np.array(latents))
    return generate(self, latents, batch_size)

  monkeypatch.setattr(generate_lib.WaveGANGenerator, "generate",
                      recording_generate)
  kwargs = dict(num_examples=12, judges_workdir=str(runs / "judges"),
                manual_dir=str(manual_dir), data_dir=str(data_dir),
                batch_size=6,
                instruments=False)
  evaluate.evaluate(str(workdir), **kwargs)
  results = evaluate.evaluate(str(workdir), latent_scale=0.5, **kwargs)
  np.testing.assert_array_equal(seen[1], seen[0] * np.float32(0.5))
  scaled = workdir / "eval_latent_scale_0.5"
  assert json.loads((scaled / "metrics.json").read_text()) == results
  assert results["latent_scale"] == 0.5
  # The unscaled evaluation is still there.
  assert json.loads((workdir / "eval" / "metrics.json").read_text())[
      "latent_scale"] == 1.0
  assert "Latents scaled by 0.5 (truncation)." in (
      scaled / "report.md").read_text()
  assert "instrument_clips" not in results
  assert "Instruments (DNSMOS, pYIN, PocketSphinx) skipped" in (
      scaled / "report.md").read_text()


def test_bad_instrument_clips_is_named(trained):
  runs, _ = trained
  with pytest.raises(evaluate.EvaluationError,
                     match="instrument_clips must be >= 1, got 0"):
    evaluate.evaluate(str(runs / "av"), instrument_clips=0)


def test_floor_partners_are_other_takes_of_the_same_digit_and_speaker():
  clips = {"target": np.arange(1, 6, dtype=np.float32)[:, None] * np.ones(3),
           "digit": np.array([1, 2, 1, 1, 3]),
           "speaker": np.array([0, 0, 0, 1, 0]),
           "target_id": np.array([b"1_a_0", b"2_a_0", b"1_a_1", b"1_b_0",
                                  b"3_a_0"])}
  partners = evaluate.floor_partners(clips, np.array([0, 2, 3]))
  # 0 <-> 2 (digit 1, speaker 0); 3 has no other take: zeros.
  np.testing.assert_array_equal(partners, [[3.0] * 3, [1.0] * 3, [0.0] * 3])


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_latent_scale_is_named(trained, scale):
  runs, _ = trained
  with pytest.raises(evaluate.EvaluationError,
                     match=f"latent_scale must be a finite number > 0, got "
                     f"{re.escape(repr(scale))}"):
    evaluate.evaluate(str(runs / "av"), latent_scale=scale)


def test_latent_scale_of_an_av_run_is_named(trained):
  runs, _ = trained
  with pytest.raises(evaluate.EvaluationError,
                     match="latent_scale=0.5 is for unconditional WaveGAN "
                     "runs; .* is an audio-visual run"):
    evaluate.evaluate(str(runs / "av"), latent_scale=0.5)


def test_specgan_workdir_generates_audio_and_is_evaluated(
    trained, tmp_path, manual_dir):
  # SpecGAN trains in the wavegan stage; its export (weights and the train
  # moments) generates audio clips, which evaluation judges as WaveGAN's.
  runs, data_dir = trained
  workdir = tmp_path / "specgan"
  trainer.train_and_evaluate(tiny_specgan_config(), str(workdir),
                             manual_dir=str(manual_dir),
                             data_dir=str(data_dir))
  generator = generate_lib.WaveGANGenerator(workdir)
  clips = generator.generate(generator.latents(3, 0))
  assert clips.shape == (3, 8192, 1)
  assert np.all(np.isfinite(clips)) and float(np.max(np.abs(clips))) > 0
  results = evaluate.evaluate(str(workdir), num_examples=12,
                              judges_workdir=str(runs / "judges"),
                              manual_dir=str(manual_dir),
                              data_dir=str(data_dir), batch_size=6,
                              instruments=False)
  assert 1.0 - 1e-9 <= results["inception_score"] <= 10.0
  assert sum(results["digit_counts"]) == 12
  # The real clips' ceiling through the representation.
  assert 1.0 - 1e-9 <= results["real_round_trip_inception_score"] <= 10.0
  assert "Griffin-Lim back to audio) score IS" in (
      workdir / "eval" / "report.md").read_text()
  waveform = generate_lib.WaveGANGenerator(
      workdir, wavegan_config.get_config("tiny"), load_export=False)
  with pytest.raises(ValueError, match="round_trip needs a spectrogram"):
    waveform.round_trip(clips)


def test_wavegan_matched_inception_scores_as_many_clips_as_real(
    trained, tiny_wavegan, manual_dir, monkeypatch):
  runs, data_dir = trained
  workdir = tiny_wavegan
  scored = []
  inception_score = metrics_lib.inception_score

  def recording_inception_score(probabilities, num_splits):
    scored.append((len(probabilities), num_splits))
    return inception_score(probabilities, num_splits)

  monkeypatch.setattr(metrics_lib, "inception_score",
                      recording_inception_score)
  results = evaluate.evaluate(str(workdir), num_examples=320,
                              judges_workdir=str(runs / "judges"),
                              manual_dir=str(manual_dir),
                              data_dir=str(data_dir), batch_size=64,
                              instruments=False)
  # Generated, real, then the first 300 generated in the real's 10 splits.
  assert scored == [(320, 10), (300, 10), (300, 10)]
  assert results["inception_score_matched_examples"] == 300
  assert 1.0 - 1e-9 <= results["inception_score_matched"] <= 10.0


def test_fit_to_resamples_and_crops():
  audio = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)[None]
  fitted = evaluate.fit_to(audio, 16000, 8000, 8192)
  assert fitted.shape == (1, 8192)
  np.testing.assert_allclose(fitted[0, 100:7900],
                             np.sin(2 * np.pi * 440 * np.arange(100, 7900)
                                    / 8000), atol=0.02)
  np.testing.assert_array_equal(fitted[0, 8000:], 0.0)


def test_probe_encoders_scores_every_probe(trained, manual_dir):
  runs, data_dir = trained
  probe = load_launch_script("probe_encoders").probe
  results = probe(str(runs / "av"), str(manual_dir), str(data_dir),
                  batch_size=256)
  assert set(results) == {
      f"{name}_to_{label}_{split}_accuracy"
      for name, label in (("visual_max", "digit"), ("visual_mean", "digit"),
                          ("style", "speaker"))
      for split in ("train", "test")}
  for key, value in results.items():
    # 2700 train / 300 test examples: accuracies are multiples of 1/n.
    n = 2700 if "_train_" in key else 300
    assert 0.0 <= value <= 1.0 and abs(value * n - round(value * n)) < 1e-6


def test_probe_encoders_without_exports_names_the_stage(trained, tmp_path):
  runs, _ = trained
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  shutil.copy(runs / "av" / "config.json", untrained / "config.json")
  with pytest.raises(errors.UserFacingError,
                     match=r"needs the acoustic stage's export"):
    load_launch_script("probe_encoders").probe(str(untrained), None, None,
                                               batch_size=8)


def test_export_checkpoint_writes_a_step_that_evaluates(
    trained, tmp_path, manual_dir):
  runs, data_dir = trained
  workdir = tmp_path / "wavegan_ema"
  config = wavegan_config.get_config("tiny").unlock()
  config.train.ema_decay = 0.9  # Checkpoints at steps 2 and 4 (tiny).
  trainer.train_and_evaluate(config, str(workdir),
                             manual_dir=str(manual_dir),
                             data_dir=str(data_dir))
  saved = checkpointing.load_step(
      str(workdir / "wavegan" / "checkpoints"), 2)
  for weights, source in (("last", "params"), ("ema", "ema_params")):
    out = tmp_path / f"step2_{weights}"
    assert export.export_checkpoint(
        str(workdir), "wavegan", 2, weights, str(out)) == ["generator"]
    exported = checkpointing.load_params(
        checkpointing.export_path(str(out), "wavegan"))
    assert_trees_equal(exported, {"generator": saved[source]["generator"]})
  # The last step's EMA is what the run exported itself.
  export.export_checkpoint(str(workdir), "wavegan", 4, "ema",
                           str(tmp_path / "step4"))
  assert_trees_equal(
      checkpointing.load_params(checkpointing.export_path(
          str(tmp_path / "step4"), "wavegan")),
      checkpointing.load_params(checkpointing.export_path(str(workdir),
                                                          "wavegan")))
  results = evaluate.evaluate(str(tmp_path / "step2_ema"), num_examples=12,
                              judges_workdir=str(runs / "judges"),
                              manual_dir=str(manual_dir),
                              data_dir=str(data_dir), batch_size=6,
                              instruments=False)
  assert results["num_examples"] == 12
  assert np.isfinite(results["inception_score"])

  no_ema = tmp_path / "wavegan_last"
  trainer.train_and_evaluate(wavegan_config.get_config("tiny"), str(no_ema),
                             manual_dir=str(manual_dir),
                             data_dir=str(data_dir))
  script = str(REPO / "launch" / "export_checkpoint.py")
  cases = {
      "missing step": (
          [f"--workdir={workdir}", "--stage=wavegan", "--step=3"],
          f"error: no checkpoint of step 3 in "
          f"{workdir / 'wavegan' / 'checkpoints'}; steps there: [2, 4]"),
      "no ema": (
          [f"--workdir={no_ema}", "--stage=wavegan", "--step=4",
           "--weights=ema"],
          "error: step 4 of "
          f"{no_ema / 'wavegan' / 'checkpoints'} keeps no EMA copies"),
      "not a run": (
          [f"--workdir={tmp_path}", "--stage=wavegan", "--step=4"],
          f"error: {tmp_path} has no config.json"),
  }
  _assert_each_exits_2_with_one_line(
      {name: subprocess.Popen(
          [sys.executable, script, *flags,
           f"--output_workdir={tmp_path / 'unused'}"], cwd=REPO,
          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
       for name, (flags, _) in cases.items()},
      {name: expected for name, (_, expected) in cases.items()})
