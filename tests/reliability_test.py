"""issue 40: nothing lost, nothing silently wrong.

A workdir is held by one run, keeps the config its weights were trained
with, and a bad config value stops the run before any stage trains; resume
survives damaged checkpoints and a cut-off metrics line; commands end on bad
input with one line and exit 2.
"""

import json
import logging
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from experiments import av_digits as av_digits_config
from tests.conftest import tiny_av_config
from wavegan_jax import errors
from wavegan_jax.data import media
from wavegan_jax.evaluation import evaluate
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import generate_command
from wavegan_jax.evaluation import generate_io
from wavegan_jax.training import checkpointing
from wavegan_jax.training import config_checks
from wavegan_jax.training import trainer
from wavegan_jax.training import workdir as workdir_lib


tiny_config = tiny_av_config


# --- Case 2: one run per workdir. ---


def test_second_run_on_a_held_workdir_stops_naming_pid_and_host(tmp_path):
  with workdir_lib.WorkdirLock(str(tmp_path)):
    with pytest.raises(errors.WorkdirLockedError) as error:
      trainer.train_and_evaluate(tiny_config(), str(tmp_path))
  assert str(error.value) == (
      f"{tmp_path}: in use by process {os.getpid()} on host "
      f"{socket.gethostname()} (lock {tmp_path}/.lock); wait for that run to "
      "end or stop it")
  # Nothing of the second run was written.
  assert sorted(os.listdir(tmp_path)) == [".lock"]


def test_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path,
                                                             caplog):
  lock_path = tmp_path / ".lock"
  lock_path.write_text(json.dumps({"pid": 4194303, "host": "gone"}))
  with caplog.at_level(logging.WARNING):
    with workdir_lib.WorkdirLock(str(tmp_path)):
      assert json.loads(lock_path.read_text()) == {
          "pid": os.getpid(), "host": socket.gethostname()}
  assert (f"{lock_path}: taking over the lock of process 4194303 on host "
          "gone, which ended without releasing it") in caplog.text
  # A clean release leaves an empty lock file: the next run does not warn.
  assert lock_path.read_text() == ""
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    with workdir_lib.WorkdirLock(str(tmp_path)):
      pass
  assert "taking over" not in caplog.text


# --- Case 3: a rerun with another config. ---


def test_rerun_with_other_overrides_stops_and_names_the_keys(tmp_path):
  workdir_lib.write_config(str(tmp_path), tiny_config())
  before = (tmp_path / "config.json").read_text()
  changed = tiny_config(**{"generator.model.lstm_features": 32,
                           "train.learning_rate": 2e-3})
  with pytest.raises(errors.WorkdirConfigError) as error:
    trainer.train_and_evaluate(changed, str(tmp_path))
  assert str(error.value) == (
      f"{tmp_path}/config.json: this run's config differs from the "
      "workdir's in 2 key(s): generator.model.lstm_features: 16 -> 32; "
      "train.learning_rate: 0.001 -> 0.002; rerun with the workdir's "
      "settings, or use a new --workdir")
  assert (tmp_path / "config.json").read_text() == before
  # Where the data lives is not part of what was trained.
  moved = tiny_config(**{"data.data_dir": "/elsewhere"})
  assert not workdir_lib.check_config(str(tmp_path), moved)


# --- Case 4: every value checked before any stage trains. ---


@pytest.mark.parametrize("overrides, message", [
    ({"generator.train.num_steps": 0},
     "generator.train.num_steps=0: must be an integer >= 1"),
    ({"visual.train.num_steps": -3},
     "visual.train.num_steps=-3"),
    ({"strategy": "bogus"},
     "strategy='bogus': must be one of ('separate', 'joint')"),
    ({"train.batch_size": 0}, "train.batch_size=0: must be an integer >= 1"),
    ({"train.log_every": 0}, "train.log_every=0: must be an integer >= 1"),
    ({"train.checkpoint_every": 0}, "train.checkpoint_every=0"),
    ({"generator.train.learning_rate": -1.0},
     "generator.train.learning_rate=-1.0: must be a number > 0"),
    ({"generator.train.ema_decay": 1.5}, "ema_decay must be in [0, 1)"),
    ({"train.summary_every": 0}, "train.summary_every=0"),
])
def test_bad_config_values_stop_before_any_stage_trains(tmp_path, overrides,
                                                        message):
  config = tiny_config(**overrides)
  with pytest.raises(errors.ConfigError) as error:
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
  assert message in str(error.value)
  assert not (tmp_path / "run").exists()


def test_batch_not_divisible_by_the_devices_is_named(monkeypatch):
  monkeypatch.setattr(config_checks.jax, "device_count", lambda: 3)
  with pytest.raises(errors.ConfigError) as error:
    config_checks.check_run_config(tiny_config(), ("acoustic",))
  assert str(error.value) == ("train.batch_size=4: must be divisible by the "
                              "3 devices the batch is split over")


def test_the_default_configs_pass_the_checks():
  from experiments import judges  # pylint: disable=g-import-not-at-top
  from experiments import wavegan  # pylint: disable=g-import-not-at-top
  for config in (av_digits_config.get_config(), tiny_config(),
                 wavegan.get_config(), wavegan.get_config("tiny"),
                 judges.get_config("tiny")):
    config_checks.check_run_config(config, trainer.experiment_stages(config))


# --- Case 5: damaged checkpoints, a cut-off metrics line, a damaged export.


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
  """A 20-step toy run with checkpoints 10 and 20 (copied per test)."""
  import toy_train_main  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("toy")
  toy_train_main.train(str(workdir), 20)
  return workdir


def _copy_run(toy_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(toy_run, workdir)
  return workdir


def _restore(workdir):
  import toy_model  # pylint: disable=g-import-not-at-top
  checkpointer = checkpointing.StageCheckpointer(
      str(workdir / "checkpoints"), max_to_keep=2)
  try:
    state, source = checkpointer.restore_or_init(toy_model.init_state)
    return int(state["step"]), source, checkpointer.manager.all_steps()
  finally:
    checkpointer.close()


def _cut_arrays(step_dir):
  """Truncates every array data file of a checkpoint step to half."""
  for path in step_dir.glob("default/**/d/*"):
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [
    _cut_arrays,  # Cut off (a full disk, a copy interrupted).
    lambda step_dir: (step_dir / "default" / "_METADATA").unlink(),  # Half
])                                                                   # gone.
def test_resume_skips_a_damaged_latest_checkpoint(toy_run, tmp_path, caplog,
                                                  damage):
  workdir = _copy_run(toy_run, tmp_path)
  damage(workdir / "checkpoints" / "20")
  with caplog.at_level(logging.WARNING):
    step, source, steps = _restore(workdir)
  assert (step, source, list(steps)) == (10, "checkpoint", [10])
  message = [r.getMessage() for r in caplog.records
             if "cannot be restored" in r.getMessage()]
  assert len(message) == 1
  assert message[0].startswith(
      f"Checkpoint {workdir}/checkpoints step 20 cannot be restored (")
  assert message[0].endswith(
      f"skipped it, moved it to {workdir}/checkpoints.damaged/20; resuming "
      "from step 10.")
  assert (workdir / "checkpoints.damaged" / "20" / "default").is_dir()


def test_resumed_run_after_a_damaged_checkpoint_saves_the_step_again(
    toy_run, tmp_path):
  import toy_train_main  # pylint: disable=g-import-not-at-top
  workdir = _copy_run(toy_run, tmp_path)
  _cut_arrays(workdir / "checkpoints" / "20")
  state, _ = toy_train_main.train(str(workdir), 20)
  assert int(state["step"]) == 20
  # Step 20 was trained again from step 10 and saved anew: it restores.
  assert _restore(workdir)[:2] == (20, "checkpoint")
  _, reference = toy_train_main.train(str(tmp_path / "reference"), 20)
  with open(workdir / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records] == [5, 10, 15, 20]
  assert records[-1]["loss"] == reference["loss"]


def test_no_checkpoint_restoring_is_one_error_naming_each(toy_run, tmp_path):
  workdir = _copy_run(toy_run, tmp_path)
  for step in ("10", "20"):
    _cut_arrays(workdir / "checkpoints" / step)
  with pytest.raises(errors.DamagedCheckpointError) as error:
    _restore(workdir)
  message = str(error.value)
  assert message.startswith(f"{workdir}/checkpoints: no checkpoint restores "
                            "(step 20: ")
  assert "; step 10: " in message
  assert message.endswith("); delete the directory to train the stage from "
                          "scratch")
  assert "\n" not in message


def test_cut_off_metrics_line_is_dropped_on_resume(toy_run, tmp_path,
                                                   caplog):
  import toy_train_main  # pylint: disable=g-import-not-at-top
  workdir = _copy_run(toy_run, tmp_path)
  metrics = workdir / "metrics.jsonl"
  lines = metrics.read_text().splitlines(keepends=True)
  # A kill mid-write: step 25's record half written, no newline.
  metrics.write_text("".join(lines) + lines[-1][:17].replace('"step": 20',
                                                             '"step": 25'))
  with caplog.at_level(logging.WARNING):
    toy_train_main.train(str(workdir), 30)
  assert f"{metrics}: dropped line 5, not a whole metrics record" in (
      caplog.text)
  records = [json.loads(line) for line in metrics.read_text().splitlines()]
  assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]


def test_damaged_export_is_one_error_naming_the_directory(tmp_path):
  export = tmp_path / "generator" / "export"
  checkpointing.export_params(str(export), {"w": np.arange(4096.0)})
  for path in export.glob("**/d/*"):
    path.write_bytes(path.read_bytes()[:10])
  with pytest.raises(errors.DamagedCheckpointError) as error:
    checkpointing.load_params(str(export))
  message = str(error.value)
  assert message.startswith(f"{export}: cannot be read, damaged or "
                            "incomplete (")
  assert message.endswith("); train the stage again or restore the files")
  assert "\n" not in message


# --- Cases 6 and 8: manifests row by row; outputs never replace inputs. ---


class _FakeGenerator:
  """Stands in for generate.AVGenerator: a constant waveform per row."""

  def __init__(self, workdir, config):
    del workdir
    self.clip = generate_lib.ClipSpec.from_config(config)

  def generate(self, videos, references, seeds):
    del references
    return np.stack([np.full(self.clip.num_samples, 0.01 * (s + 1),
                             np.float32) for s in seeds[:len(videos)]])


@pytest.fixture
def fake_av_workdir(tmp_path, monkeypatch):
  workdir = tmp_path / "workdir"
  (workdir / "generator" / "export").mkdir(parents=True)
  workdir_lib.write_config(str(workdir), tiny_config())
  monkeypatch.setattr(generate_lib, "AVGenerator", _FakeGenerator)
  return workdir


def test_manifest_rows_fail_alone_and_the_others_are_written(
    fake_av_workdir, make_media, tmp_path, capsys):
  video = make_media.video("clip.mp4", num_frames=8)
  voice = make_media.wav("voice.wav", make_media.tone(8000))
  voice_bytes = voice.read_bytes()
  folder = make_media.folder
  (folder / "taken.wav").mkdir()
  manifest = folder / "jobs.csv"
  manifest.write_text(
      "video,reference,output\n"
      "clip.mp4,voice.wav,out/a.wav\n"
      "clip.mp4,voice.wav,out/extra.wav,surplus\n"     # An extra field.
      "clip.mp4,voice.wav,taken.wav\n"                 # A folder.
      "clip.mp4,voice.wav,voice.wav\n"                 # Its own input.
      'clip.mp4,"voice.wav"x,out/quote.wav\n'          # Bad quoting.
      "clip.mp4,voice.wav,out/b.wav\n")
  status = generate_command.run(str(fake_av_workdir), manifest=str(manifest),
                                batch_size=8)
  err = capsys.readouterr().err.splitlines()
  assert status == 2
  assert err[0] == (f"error: {manifest} row 3: 4 fields where the header "
                    "has 3 (video, reference, output)")
  assert err[1].startswith(f"error: {manifest} row 6: not valid CSV (")
  assert err[2:] == [
      f"error: {manifest} row 4: {folder}/taken.wav: is a folder; give a "
      "file name",
      f"error: {manifest} row 5: {folder}/voice.wav: is the input reference "
      f"({folder}/voice.wav); refusing to overwrite it: choose another "
      "output path",
      f"error: {manifest}: 4 of 6 rows failed; the other 2 were generated"]
  # Rows 2 and 7 (data rows 0 and 5) got their seeds' waveforms.
  for name, seed in (("a", 0), ("b", 5)):
    audio, rate = soundfile.read(folder / "out" / f"{name}.wav")
    assert rate == 8000 and audio.shape == (8192,)
    np.testing.assert_allclose(audio, 0.01 * (seed + 1), atol=1 / 32768)
  assert voice.read_bytes() == voice_bytes and video.is_file()


def test_a_row_whose_write_fails_does_not_lose_the_batch(
    fake_av_workdir, make_media, monkeypatch, capsys):
  make_media.video("clip.mp4", num_frames=8)
  make_media.wav("voice.wav", make_media.tone(8000))
  manifest = make_media.raw("jobs.csv", (
      "video,reference,output\n" + "".join(
          f"clip.mp4,voice.wav,out/{i}.wav\n" for i in range(3))).encode())
  write_audio = generate_io.write_audio

  def failing_write(path, waveform, rate):
    if path.name == "1.wav":
      raise RuntimeError("disk controller on fire")
    return write_audio(path, waveform, rate)
  monkeypatch.setattr(generate_io, "write_audio", failing_write)
  status = generate_command.run(str(fake_av_workdir), manifest=str(manifest),
                                batch_size=8)
  assert status == 2
  assert capsys.readouterr().err.splitlines() == [
      f"error: {manifest} row 3: RuntimeError: disk controller on fire",
      f"error: {manifest}: 1 of 3 rows failed; the other 2 were generated"]
  assert sorted(p.name for p in (make_media.folder / "out").iterdir()) == [
      "0.wav", "2.wav"]


@pytest.mark.parametrize("flag", ["output", "output_video"])
def test_output_equal_to_an_input_is_refused(fake_av_workdir, make_media,
                                             tmp_path, capsys, flag):
  video = make_media.video("clip.mp4", num_frames=8)
  voice = make_media.wav("voice.wav", make_media.tone(8000))
  before = (video.read_bytes(), voice.read_bytes())
  # The same file by another spelling: a relative part and a link.
  (tmp_path / "link.mp4").symlink_to(video)
  paths = ({"output": str(make_media.folder / "." / "voice.wav")}
           if flag == "output" else
           {"output": str(tmp_path / "out.wav"),
            "output_video": str(tmp_path / "link.mp4")})
  status = generate_command.run(str(fake_av_workdir), video=str(video),
                                reference=str(voice), **paths)
  err = capsys.readouterr().err
  assert status == 2
  named, source = ((paths["output"], f"--reference ({voice})")
                   if flag == "output" else
                   (paths["output_video"], f"--video ({video})"))
  assert err == (f"error: {named}: is the input {source}; refusing to "
                 "overwrite it: choose another output path\n")
  assert (video.read_bytes(), voice.read_bytes()) == before


# --- Case 9: evaluate's inputs checked before the work. ---


def test_evaluate_checks_num_examples_the_same_for_both_kinds(tmp_path):
  from experiments import wavegan  # pylint: disable=g-import-not-at-top
  for name, config in (("av", tiny_config()),
                       ("wavegan", wavegan.get_config("tiny"))):
    (tmp_path / name).mkdir()
    workdir_lib.write_config(str(tmp_path / name), config)
    with pytest.raises(errors.EvaluationError) as error:
      evaluate.evaluate(str(tmp_path / name), num_examples=0)
    assert str(error.value) == "num_examples must be >= 2, got 0"


def test_evaluate_where_results_cannot_be_written_fails_first(tmp_path):
  workdir_lib.write_config(str(tmp_path), tiny_config())
  (tmp_path / "eval").write_text("a file where the results folder goes")
  with pytest.raises(errors.EvaluationError) as error:
    evaluate.evaluate(str(tmp_path), judges_workdir=str(tmp_path / "none"))
  assert str(error.value) == (f"{tmp_path}/eval: the results cannot be "
                              "written there (File exists)")


# --- Case 7: video decoding bounded in time and size. ---


def test_video_decoding_reads_only_the_frames_it_needs(make_media,
                                                       monkeypatch):
  path = make_media.video("long.mp4", num_frames=100, fps=25, size=64,
                          audio_rate=None)  # 4 s.
  decoded = []
  to_array = media._to_array  # pylint: disable=protected-access

  def counting(*args, **kwargs):
    decoded.append(1)
    return to_array(*args, **kwargs)
  monkeypatch.setattr(media, "_to_array", counting)
  frames = media.load_video(path, fps=25, channels=3, max_seconds=1.0,
                            max_side=32)
  # Frames at 0, 0.04, ..., 0.96 s: 25 decoded of 100, each shrunk.
  assert len(decoded) == 25
  assert frames.shape == (25, 32, 32, 3)
  assert media.video_seconds(path) == pytest.approx(4.0)


def test_bounded_output_video_keeps_the_aspect_ratio():
  bounded_size = media._bounded_size  # pylint: disable=protected-access
  assert bounded_size(1920, 1080, 1280) == (720, 1280)
  assert bounded_size(1080, 1920, 1280) == (1280, 720)
  assert bounded_size(640, 480, 1280) is None


# --- The bad-input table: every command ends in one line and exit 2. ---

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = f"--config={REPO}/experiments/av_digits.py:tiny"


def _setup_table_case(case, tmp_path, make_media):
  """(argv, expected stderr line) of one bad-input case."""
  workdir = tmp_path / "run"
  if case == "strategy":
    return (["train", TINY, f"--workdir={workdir}",
             "--config.strategy=bogus"],
            "error: strategy='bogus': must be one of ('separate', 'joint')")
  if case == "num_steps":
    return (["train", TINY, f"--workdir={workdir}",
             "--config.generator.train.num_steps=0"],
            "error: generator.train.num_steps=0: must be an integer >= 1")
  if case == "workdir_is_a_file":
    workdir.write_text("")
    return (["train", TINY, f"--workdir={workdir}"],
            f"error: {workdir}: is a file, not a directory")
  if case == "workdir_under_a_file":
    workdir.write_text("")
    return (["train", TINY, f"--workdir={workdir}/sub"],
            f"error: {workdir}/sub: cannot create it (Not a directory)")
  if case == "other_config":
    workdir.mkdir()
    workdir_lib.write_config(str(workdir), tiny_config())
    return (["train", TINY, f"--workdir={workdir}",
             "--config.seed=3"],
            f"error: {workdir}/config.json: this run's config differs from "
            "the workdir's in 1 key(s): seed: 0 -> 3; rerun with the "
            "workdir's settings, or use a new --workdir")
  (workdir / "generator" / "export").mkdir(parents=True)
  workdir_lib.write_config(str(workdir), tiny_config())
  video = make_media.video("clip.mp4", num_frames=8)
  voice = make_media.wav("voice.wav", make_media.tone(8000))
  if case == "output_is_the_reference":
    return (["generate", f"--workdir={workdir}", f"--video={video}",
             f"--reference={voice}", f"--output={voice}"],
            f"error: {voice}: is the input --reference ({voice}); refusing "
            "to overwrite it: choose another output path")
  if case == "output_is_a_folder":
    (tmp_path / "out.wav").mkdir()
    return (["generate", f"--workdir={workdir}", f"--video={video}",
             f"--reference={voice}", f"--output={tmp_path / 'out.wav'}"],
            f"error: {tmp_path / 'out.wav'}: is a folder; give a file name")
  if case == "evaluate_num_examples":
    return (["evaluate", f"--workdir={workdir}", "--num_examples=0"],
            "error: num_examples must be >= 2, got 0")
  raise ValueError(case)


# Each runs a command in a fresh interpreter (~10 s idle): the other cases
# of docs/reliability.md's table are checked in-process.
TABLE = ("strategy", "workdir_is_a_file", "other_config",
         "output_is_the_reference", "evaluate_num_examples")


@pytest.mark.parametrize("case", TABLE)
def test_bad_input_table_one_line_and_exit_2(case, tmp_path, make_media):
  (script, *args), line = _setup_table_case(case, tmp_path, make_media)
  result = subprocess.run(
      [sys.executable, str(REPO / "launch" / f"{script}.py"), *args],
      capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
      env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == line


def test_debug_flag_gives_the_traceback(tmp_path):
  result = subprocess.run(
      [sys.executable, str(REPO / "launch" / "train.py"), TINY,
       f"--workdir={tmp_path}", "--config.strategy=bogus", "--debug"],
      capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
      env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert result.returncode == 1
  assert "Traceback" in result.stderr
  assert result.stderr.strip().splitlines()[-1].endswith(
      "ConfigError: strategy='bogus': must be one of ('separate', 'joint')")


def test_second_train_process_on_a_held_workdir_exits_2(tmp_path):
  with workdir_lib.WorkdirLock(str(tmp_path)):
    result = subprocess.run(
        [sys.executable, str(REPO / "launch" / "train.py"), TINY,
         f"--workdir={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path}: in use by process {os.getpid()} on host "
      f"{socket.gethostname()} (lock {tmp_path}/.lock); wait for that run to "
      "end or stop it")


def test_workdir_that_is_a_file_or_under_one_is_named(tmp_path):
  (tmp_path / "file").write_text("")
  with pytest.raises(errors.PathError) as error:
    trainer.train_and_evaluate(tiny_config(), str(tmp_path / "file"))
  assert str(error.value) == f"{tmp_path}/file: is a file, not a directory"
  with pytest.raises(errors.PathError) as error:
    trainer.train_and_evaluate(tiny_config(), str(tmp_path / "file" / "sub"))
  assert str(error.value) == (f"{tmp_path}/file/sub: cannot create it (Not a "
                              "directory)")


def test_output_that_is_a_folder_is_one_line(fake_av_workdir, make_media,
                                             tmp_path, capsys):
  video = make_media.video("clip.mp4", num_frames=8)
  voice = make_media.wav("voice.wav", make_media.tone(8000))
  (tmp_path / "out.wav").mkdir()
  status = generate_command.run(str(fake_av_workdir), video=str(video),
                                reference=str(voice),
                                output=str(tmp_path / "out.wav"))
  assert status == 2
  assert capsys.readouterr().err == (
      f"error: {tmp_path}/out.wav: is a folder; give a file name\n")
