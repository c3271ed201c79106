"""Tests of the robustness set (wavegan_jax/data/robustness.py) and its
evaluation (evaluation/robustness.py, launch/evaluate_robustness.py).

The set tests make a few clips of a few kinds; the end-to-end test trains
av_digits:tiny and judges:tiny once for the module (a slow fixture).
"""

import csv
import fractions
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from experiments import av_digits as av_digits_config
from experiments import judges as judges_config
from wavegan_jax.data import media
from wavegan_jax.data import robustness
from wavegan_jax.evaluation import evaluate
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import robustness as robustness_eval
from wavegan_jax.training import trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
# The default AV-digits clip: 32 frames of 32x32 over 8192 samples at 8 kHz.
CLIP = generate_lib.ClipSpec(num_frames=32, num_samples=8192,
                             sample_rate=8000, frame_size=32)
SET_KINDS = ("mnist", "inverted", "size64", "fps25", "combined")


@pytest.fixture(scope="module")
def small_set(manual_dir, tmp_path_factory):
  folder = tmp_path_factory.mktemp("robustness_set")
  robustness.make_set(manual_dir, folder, clips_per_kind=2, kinds=SET_KINDS,
                      seed=3)
  return folder


def test_set_writes_every_file_and_a_manifest(small_set):
  info, rows = robustness.read_set(small_set)
  assert info["kinds"] == list(SET_KINDS) and info["clips_per_kind"] == 2
  assert [r.kind for r in rows] == [k for k in SET_KINDS for _ in range(2)]
  assert [r.digit for r in rows] == [0, 1] * len(SET_KINDS)
  for row in rows:
    for path in (row.video, row.reference, row.target):
      assert path.is_file() and path.stat().st_size > 100, path
    # Targets and references are FSDD test takes (0-4) of the same speaker.
    for stem in (row.target_id, row.reference_id):
      assert int(stem.split("_")[2]) in range(5)
      assert stem.split("_")[1] == row.speaker
    assert int(row.target_id.split("_")[0]) == row.digit
    assert int(row.reference_id.split("_")[0]) != row.digit
  # The manifest is one launch/generate.py --manifest reads.
  with open(small_set / robustness.MANIFEST_FILE) as file:
    header = next(csv.reader(file))
  assert header[:3] == ["video", "reference", "output"]


@pytest.mark.parametrize("kind, frames, size", [
    ("mnist", 32, 32), ("inverted", 32, 32), ("size64", 32, 64),
    ("fps25", 26, 32), ("combined", 26, 64)])
def test_videos_have_their_kinds_rate_and_size(small_set, kind, frames,
                                               size):
  _, rows = robustness.read_set(small_set)
  row = next(r for r in rows if r.kind == kind)
  raw = media.load_video(row.video, channels=3)
  assert raw.shape == (frames, size, size, 3)
  # Every kind decodes through the generate path to the model's clip.
  video = generate_lib.prepare_video(row.video, CLIP)
  assert video.shape == (32, 32, 32, 1) and video.dtype == np.uint8


def _ink(video, background):
  """Per frame, the largest difference from the background level."""
  return np.abs(video.astype(int) - background).max(axis=(1, 2, 3))


def test_digit_appears_at_the_onset_the_target_starts_at(small_set):
  _, rows = robustness.read_set(small_set)
  for row in rows:
    video = generate_lib.prepare_video(row.video, CLIP)
    background = int(np.bincount(video.ravel()).argmax())
    shown = np.flatnonzero(_ink(video, background) > 60)
    assert len(shown) > 3, row.video
    # The model's first frame showing the digit starts within one frame of
    # the onset (frames of 25 fps sources are held across model frames).
    model_onset = row.onset_seconds * float(CLIP.fps)
    assert abs(shown[0] - model_onset) <= 1.0, (row.video, shown[0],
                                                model_onset)
    target, rate = soundfile.read(row.target)
    assert rate == 8000 and len(target) == 8192
    start = int(round(row.onset_seconds * 8000))
    assert not np.any(target[:start]) and np.any(target[start:start + 400])


def test_inverted_frames_are_white_around_a_dark_digit(small_set):
  _, rows = robustness.read_set(small_set)
  row = next(r for r in rows if r.kind == "inverted")
  video = generate_lib.prepare_video(row.video, CLIP)
  assert np.median(video) > 240  # White background.
  assert video.min() < 60  # A dark digit on some frame.


def test_font_glyphs_are_centred_digits_in_mnists_box():
  for font in robustness.FONTS:
    glyph = robustness.font_glyph(7, font)
    assert glyph.shape == (28, 28) and glyph.max() > 0.9, font
    rows = np.flatnonzero(glyph.max(axis=1) > 0.2)
    assert 18 <= rows.max() - rows.min() + 1 <= 22, font
    cy, cx = np.array(np.nonzero(glyph > 0.2)).mean(axis=1)
    assert abs(cy - 13.5) < 2.5 and abs(cx - 13.5) < 2.5, font


def test_stroke_change_thickens_and_thins():
  glyph = np.zeros((28, 28), np.float32)
  glyph[4:24, 12:16] = 1.0  # A bar 4 px wide.
  width = lambda g: int(np.sum(g[14] > 0.5))
  assert width(robustness.change_stroke(glyph, 2.0)) == 6
  assert width(robustness.change_stroke(glyph, -2.0)) == 2


def test_colours_keep_a_visible_luminance_difference():
  rng = np.random.default_rng(0)
  for _ in range(50):
    foreground, background = robustness.draw_colours(
        robustness.KINDS["colour"], rng)
    assert abs(robustness.luminance(foreground) - robustness.luminance(
        background)) >= robustness.MIN_COLOUR_CONTRAST


def test_frame_counts_cover_the_clip():
  seconds = fractions.Fraction(8192, 8000)
  assert robustness.num_video_frames(robustness.DEFAULT_FPS, seconds) == 32
  assert robustness.num_video_frames(fractions.Fraction(25), seconds) == 26
  assert robustness.num_video_frames(fractions.Fraction(60), seconds) == 62


@pytest.mark.parametrize("kwargs, named", [
    (dict(kinds=["mnist", "sketch"]), "unknown robustness kind"),
    (dict(clips_per_kind=0), "clips_per_kind must be an integer >= 1"),
])
def test_bad_set_arguments_are_named(manual_dir, tmp_path, kwargs, named):
  with pytest.raises(robustness.RobustnessSetError, match=named):
    robustness.make_set(manual_dir, tmp_path / "set", **kwargs)


def test_missing_raw_data_is_named(tmp_path):
  with pytest.raises(robustness.RobustnessSetError, match=str(tmp_path)):
    robustness.make_set(tmp_path, tmp_path / "set", clips_per_kind=1)


def test_read_set_names_a_missing_set_and_a_bad_row(small_set, tmp_path):
  with pytest.raises(robustness.RobustnessSetError, match="set.json"):
    robustness.read_set(tmp_path)
  broken = tmp_path / "broken"
  broken.mkdir()
  (broken / robustness.SET_FILE).write_text("{}")
  with open(small_set / robustness.MANIFEST_FILE, newline="") as file:
    rows = list(csv.DictReader(file))
  rows[1]["digit"] = "one"  # The manifest's row 3 (the header is row 1).
  with open(broken / robustness.MANIFEST_FILE, "w", newline="") as file:
    writer = csv.DictWriter(file, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  with pytest.raises(robustness.RobustnessSetError, match="row 3"):
    robustness.read_set(broken)


# --- The evaluation, end to end on tiny trained workdirs. ---


@pytest.fixture(scope="module")
def trained(tmp_path_factory, manual_dir, av_digits_data_dir):
  """A runs dir with av_digits:tiny in runs/av and judges:tiny in
  runs/judges."""
  runs = tmp_path_factory.mktemp("runs")
  for name, config in (("av", av_digits_config.get_config("tiny")),
                       ("judges", judges_config.get_config("tiny"))):
    trainer.train_and_evaluate(config, str(runs / name),
                               manual_dir=str(manual_dir),
                               data_dir=str(av_digits_data_dir))
  return runs


KIND_KEYS = {"num_examples", "digit_accuracy", "speaker_accuracy",
             "sync_error_ms_median", "sync_undetected",
             "real_digit_accuracy", "real_speaker_accuracy",
             "real_sync_error_ms_median", "real_sync_undetected"}


def test_evaluation_scores_every_kind_and_writes_a_report(
    trained, small_set, manual_dir, tmp_path):
  output = tmp_path / "out"
  results = robustness_eval.evaluate_robustness(
      str(trained / "av"), set_dir=str(small_set), output_dir=str(output),
      manual_dir=str(manual_dir), batch_size=4)
  written = json.loads((output / "metrics.json").read_text())
  assert written == results
  assert KIND_KEYS <= set(written)
  assert written["num_examples"] == 2 * len(SET_KINDS)
  assert list(written["kinds"]) == list(SET_KINDS)
  for values in written["kinds"].values():
    assert set(values) == KIND_KEYS and values["num_examples"] == 2
    for key in ("digit_accuracy", "speaker_accuracy", "real_digit_accuracy"):
      assert values[key] in (0.0, 0.5, 1.0)
  # Overall accuracy is the mean of the equal-sized kinds'.
  assert written["digit_accuracy"] == pytest.approx(np.mean(
      [v["digit_accuracy"] for v in written["kinds"].values()]))
  assert written["min_kind_digit_accuracy"] == min(
      v["digit_accuracy"] for v in written["kinds"].values())
  # Real targets start at the visual onset.
  assert 0.0 <= written["real_sync_error_ms_median"] < 100.0
  report = (output / "report.md").read_text()
  for kind in SET_KINDS:
    assert f"| {kind} |" in report
    audio, rate = soundfile.read(output / "examples" / f"{kind}_generated.wav")
    assert rate == 8000 and audio.shape == (8192,)
  assert (output / "kinds.png").stat().st_size > 1000
  # The workdir itself is only read.
  assert not (trained / "av" / "eval").exists()


def test_evaluation_generates_what_the_generate_command_does(
    trained, small_set):
  """Clip k with seed + k equals launch/generate.py --manifest's output."""
  _, rows = robustness.read_set(small_set)
  generator = generate_lib.AVGenerator(trained / "av")
  row = rows[3]
  video = generate_lib.prepare_video(row.video, generator.clip)
  reference = generate_lib.prepare_reference(row.reference, generator.clip)
  one = generator.generate(video[None], reference[None], [3])[0]
  many = evaluate.batched(
      generator.generate,
      [np.stack([generate_lib.prepare_video(r.video, generator.clip)
                 for r in rows]),
       np.stack([generate_lib.prepare_reference(r.reference, generator.clip)
                 for r in rows]),
       np.arange(len(rows), dtype=np.int32)], 4)
  np.testing.assert_allclose(many[3], one, atol=1e-5)


def test_bad_inputs_are_named(trained, small_set, tmp_path, monkeypatch):
  runs = trained
  monkeypatch.delenv("WAVEGAN_MANUAL_DIR", raising=False)
  cases = [
      (dict(workdir=str(tmp_path / "nowhere")), "does not exist"),
      (dict(workdir=str(runs / "judges")), "not an audio-visual run"),
      (dict(workdir=str(runs / "av"), judges_workdir=str(tmp_path)),
       "no trained judges export"),
      (dict(workdir=str(runs / "av"), set_dir=str(tmp_path / "none")),
       "no robustness set"),
      (dict(workdir=str(runs / "av"), set_dir=str(small_set),
            kinds=["sketch"]), "unknown robustness kind"),
      (dict(workdir=str(runs / "av"), batch_size=0), "batch_size"),
  ]
  for kwargs, named in cases:
    workdir = kwargs.pop("workdir")
    kwargs.setdefault("output_dir", str(tmp_path / "out"))
    with pytest.raises(evaluate.EvaluationError, match=named):
      robustness_eval.evaluate_robustness(workdir, **kwargs)


def test_launch_script_exits_2_with_one_line(tmp_path):
  process = subprocess.run(
      [sys.executable, str(REPO / "launch" / "evaluate_robustness.py"),
       f"--workdir={tmp_path / 'nowhere'}"], cwd=REPO, capture_output=True,
      text=True, timeout=300, check=False)
  errors = [line for line in process.stderr.splitlines()
            if line.startswith("error:")]
  assert process.returncode == 2, process.stderr
  assert len(errors) == 1 and "does not exist" in errors[0]
  assert "Traceback" not in process.stderr
