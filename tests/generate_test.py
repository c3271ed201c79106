"""End-to-end tests of launch/generate.py and wavegan_jax/evaluation/generate*.

The tiny AV-digits and WaveGAN configs are trained once for the module; the
commands run in-process through generate_command.run (what launch/generate.py
calls), and a few bad-input cases run the script itself for its exit status.
"""

import csv
import dataclasses
import fractions
import json
import os
import pathlib
import subprocess
import sys

import av
import numpy as np
from PIL import Image
import pytest
import soundfile

from experiments import av_digits as av_digits_config
from experiments import wavegan as wavegan_config
from tests.conftest import config_with
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import generate_command
from wavegan_jax.training import trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
# av_digits:tiny: 32 frames of 32x32 over 8192 samples at 8 kHz.
NUM_SAMPLES, SAMPLE_RATE, NUM_FRAMES = 8192, 8000, 32
FPS = fractions.Fraction(125, 4)
PREVIEW_LEN = 8 * 8192 + 7 * 4000  # 8 clips, 0.5 s of silence between.


_config = config_with


@pytest.fixture(scope="module")
def av_workdir(av_digits_data_dir, manual_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("av_tiny")
  trainer.train_and_evaluate(_config(av_digits_config, "tiny"), str(workdir),
                             manual_dir=str(manual_dir),
                             data_dir=str(av_digits_data_dir))
  return workdir


@pytest.fixture(scope="module")
def wavegan_workdir(manual_dir, tmp_path_factory):
  """wavegan:tiny trained on 70 FSDD takes of one speaker (links, no copy).

  One critic update per step instead of five: the same generator (all that
  generation reads) at a fraction of the compile time.
  """
  small_manual_dir = tmp_path_factory.mktemp("fsdd_subset")
  recordings = small_manual_dir / "fsdd" / "recordings"
  recordings.mkdir(parents=True)
  for digit in range(10):
    for take in (0, 1, 5, 6, 7, 8, 9):  # Takes 0-4 are FSDD's test split.
      name = f"{digit}_jackson_{take}.wav"
      (recordings / name).symlink_to(manual_dir / "fsdd" / "recordings" / name)
  workdir = tmp_path_factory.mktemp("wavegan_tiny")
  config = _config(wavegan_config, "tiny", **{"wavegan.adversarial.d_steps": 1})
  trainer.train_and_evaluate(config, str(workdir),
                             manual_dir=str(small_manual_dir),
                             data_dir=str(tmp_path_factory.mktemp("tfds_wg")))
  return workdir


def _write_mp4(path, num_frames, fps, width, height):
  """A colour mpeg4 video: a square that changes colour, no audio."""
  with av.open(str(path), "w") as container:
    stream = container.add_stream("mpeg4", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for i in range(num_frames):
      image = np.zeros((height, width, 3), np.uint8)
      image[8:40, 16:48] = (200, 40 * (i % 6), 30)
      container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
    container.mux(stream.encode(None))
  return path


@pytest.fixture(scope="module")
def media_files(tmp_path_factory):
  """Inputs good and bad, written once for the module."""
  folder = tmp_path_factory.mktemp("inputs")
  files = {"mp4": _write_mp4(folder / "clip.mp4", 38, 25, 64, 48)}  # 1.5 s
  seconds = np.arange(16000)[:, None] / 16000
  files["stereo"] = folder / "stereo_16k.wav"
  soundfile.write(str(files["stereo"]),
                  0.3 * np.sin(2 * np.pi * np.array([300, 520]) * seconds),
                  16000)
  # A GIF of 30 colour frames at 40 ms (1.2 s), and 20 grayscale PNGs.
  images = []
  for i in range(30):  # A moving square: no two frames alike (GIF merges).
    image = np.full((40, 50, 3), (20, 200, 90), np.uint8)
    image[10:20, i:i + 10] = 255
    images.append(Image.fromarray(image))
  files["gif"] = folder / "clip.gif"
  images[0].save(files["gif"], save_all=True, append_images=images[1:],
                 duration=40, loop=0)
  files["frames"] = folder / "frames"
  files["frames"].mkdir()
  for i in range(20):
    Image.new("L", (40, 40), 100 + i).save(files["frames"] / f"{i:03d}.png")
  files["empty_frames"] = folder / "empty_frames"
  files["empty_frames"].mkdir()
  files["empty_wav"] = folder / "empty.wav"
  files["empty_wav"].write_bytes(b"")
  files["text_wav"] = folder / "text.wav"
  files["text_wav"].write_text("not audio at all\n" * 20)
  files["silent_wav"] = folder / "silent.wav"
  soundfile.write(str(files["silent_wav"]), np.zeros(4000), 8000)
  files["nan_wav"] = folder / "nan.wav"
  soundfile.write(str(files["nan_wav"]), np.full(4000, np.nan, np.float32),
                  8000, subtype="FLOAT")
  data = files["mp4"].read_bytes()
  files["truncated_mp4"] = folder / "truncated.mp4"
  files["truncated_mp4"].write_bytes(data[:len(data) // 2])
  files["empty_mp4"] = folder / "empty.mp4"
  files["empty_mp4"].write_bytes(b"")
  files["audio_only_mp4"] = folder / "audio_only.mp4"
  with av.open(str(files["audio_only_mp4"]), "w") as container:
    stream = container.add_stream("aac", rate=8000)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(np.full((1, 4096), 0.1, np.float32),
                                       format="flt", layout="mono")
    frame.sample_rate = 8000
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  return files


def _read_wav(path):
  audio, rate = soundfile.read(str(path), dtype="float32")
  assert soundfile.info(str(path)).subtype == "PCM_16"
  return audio, rate


@pytest.fixture(scope="module")
def single_run(av_workdir, media_files, tmp_path_factory):
  """One clip from the 1.5 s colour mp4 and the 16 kHz stereo reference."""
  folder = tmp_path_factory.mktemp("single")
  output, video = folder / "out.wav", folder / "out.mp4"
  status = generate_command.run(
      str(av_workdir), video=str(media_files["mp4"]),
      reference=str(media_files["stereo"]), output=str(output),
      output_video=str(video), seed=7)
  return status, output, video


def test_mp4_and_stereo_reference_give_wav_and_muxed_video(single_run):
  status, output, video = single_run
  assert status == 0
  audio, rate = _read_wav(output)
  assert (audio.shape, rate) == ((NUM_SAMPLES,), SAMPLE_RATE)
  assert np.all(np.isfinite(audio)) and np.any(audio)
  with av.open(str(video)) as container:
    assert abs(container.duration / 1e6 - NUM_SAMPLES / SAMPLE_RATE) <= 1 / FPS
    audio_stream = container.streams.audio[0]
    assert (audio_stream.codec_context.name, audio_stream.rate) == (
        "aac", SAMPLE_RATE)
    audio_seconds = audio_stream.duration * audio_stream.time_base
    assert abs(audio_seconds - NUM_SAMPLES / SAMPLE_RATE) <= 1 / FPS
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
  # 1.5 s at 25 fps is 47 frames at the model's 31.25 fps: the first 32.
  assert len(frames) == NUM_FRAMES
  assert frames[0].shape == (48, 64, 3)  # The input's size and colour.
  assert frames[0][20, 30, 0] > 150 > frames[0][20, 30, 2]


def test_gif_and_frame_folder_become_the_model_clip(av_workdir, media_files,
                                                     tmp_path, capsys,
                                                     caplog):
  clip = generate_lib.ClipSpec.from_config(
      generate_lib.read_workdir_config(av_workdir)[1])
  assert (clip.fps, clip.frame_size) == (FPS, 32)
  # An AV-digits workdir redraws videos as its digits (digit_frames).
  assert clip.normalize_digits
  resized_only = dataclasses.replace(clip, normalize_digits=False)
  gif = generate_lib.prepare_video(media_files["gif"], resized_only)
  assert (gif.shape, gif.dtype) == ((32, 32, 32, 1), np.uint8)
  assert np.all(gif > 0)  # 1.2 s of frames fill the 1.024 s clip...
  assert "37 frames (1.18 s)" in caplog.text  # ...and the cut is logged.
  assert "only the first 32 frames are used" in caplog.text
  # Redrawn: the green ground is black and the white square full ink; its
  # path is kept, so near the clip's ends it leaves the enlarged view.
  drawn = generate_lib.prepare_video(media_files["gif"], clip)
  assert drawn.shape == gif.shape
  assert np.median(drawn) == 0
  assert np.mean(drawn.max(axis=(1, 2, 3)) == 255) > 0.8
  folder = generate_lib.prepare_video(media_files["frames"], resized_only)
  # 20 frames taken at the model's rate, then 12 empty ones.
  np.testing.assert_array_equal(folder[:20, 0, 0, 0], 100 + np.arange(20))
  assert not np.any(folder[20:])
  # The folder is generated from in the manifest test.
  output = tmp_path / "gif.wav"
  status = generate_command.run(
      str(av_workdir), video=str(media_files["gif"]),
      reference=str(media_files["stereo"]), output=str(output), seed=3)
  assert status == 0, capsys.readouterr().err
  assert _read_wav(output)[0].shape == (NUM_SAMPLES,)


def test_manifest_generates_good_rows_and_reports_the_bad_one(
    av_workdir, media_files, single_run, tmp_path, capsys):
  manifest = tmp_path / "jobs" / "manifest.csv"
  manifest.parent.mkdir()
  rows = [(media_files["mp4"], media_files["stereo"], "out/a.wav"),
          (media_files["gif"], media_files["silent_wav"], "out/b.wav"),
          (media_files["frames"], media_files["stereo"], "out/c.wav")]
  with open(manifest, "w", newline="") as file:
    writer = csv.writer(file)
    writer.writerow(["video", "reference", "output"])
    writer.writerows(rows)
  status = generate_command.run(str(av_workdir), manifest=str(manifest),
                                batch_size=2, seed=7)
  err = capsys.readouterr().err.strip().splitlines()
  assert status == 2
  assert err == [
      f"error: {manifest} row 3: {media_files['silent_wav']}: silent (all "
      "samples are zero)",
      f"error: {manifest}: 1 of 3 rows failed; the other 2 were generated"]
  out = manifest.parent / "out"
  assert sorted(os.listdir(out)) == ["a.wav", "c.wav"]
  # Row k uses seed + k whatever the batch: row 0 equals the single run.
  np.testing.assert_allclose(_read_wav(out / "a.wav")[0],
                             _read_wav(single_run[1])[0], atol=2 / 32768)


def test_unconditional_samples(wavegan_workdir, tmp_path, capsys):
  status = generate_command.run(str(wavegan_workdir), num_samples=3,
                                output_dir=str(tmp_path / "samples"), seed=1)
  assert status == 0, capsys.readouterr().err
  names = sorted(os.listdir(tmp_path / "samples"))
  assert names == ["sample_0000.wav", "sample_0001.wav", "sample_0002.wav"]
  clips = [_read_wav(tmp_path / "samples" / name) for name in names]
  assert all(c[0].shape == (8192,) and c[1] == 8000 for c in clips)
  assert not np.array_equal(clips[0][0], clips[1][0])


def test_preview_renders_every_checkpoint_once(wavegan_workdir, tmp_path,
                                               capsys):
  steps = sorted(int(d) for d in os.listdir(
      wavegan_workdir / "wavegan" / "checkpoints") if d.isdigit())
  assert steps == [2, 4]
  preview_dir = tmp_path / "preview"
  assert generate_command.run(str(wavegan_workdir), preview=True,
                              output_dir=str(preview_dir)) == 0
  assert "2 rendered, 0 already there" in capsys.readouterr().out
  assert sorted(os.listdir(preview_dir)) == ["preview_2.wav", "preview_4.wav"]
  previews = [_read_wav(preview_dir / f"preview_{s}.wav")[0] for s in steps]
  for preview in previews:
    assert preview.shape == (PREVIEW_LEN,)
    assert not np.any(preview[8192:8192 + 4000])  # The silence between.
  assert not np.array_equal(previews[0], previews[1])
  mtime = (preview_dir / "preview_2.wav").stat().st_mtime_ns
  assert generate_command.run(str(wavegan_workdir), preview=True,
                              output_dir=str(preview_dir)) == 0
  assert "0 rendered, 2 already there" in capsys.readouterr().out
  assert (preview_dir / "preview_2.wav").stat().st_mtime_ns == mtime


def _untrained(tmp_path, workdir):
  folder = tmp_path / "untrained"
  folder.mkdir()
  (folder / "config.json").write_text((workdir / "config.json").read_text())
  return folder


def _judges_workdir(tmp_path):
  folder = tmp_path / "judges"
  folder.mkdir()
  (folder / "config.json").write_text(json.dumps({"judges": {}, "data": {}}))
  return folder


# (name, video, reference, workdir maker, the file named, what is wrong)
BAD_INPUTS = [
    ("missing_video", "missing.mp4", "stereo", None, "missing.mp4",
     "no such file"),
    ("missing_reference", "mp4", "missing.wav", None, "missing.wav",
     "no such file"),
    ("empty_reference", "mp4", "empty_wav", None, "empty_wav",
     "empty (0 bytes)"),
    ("non_audio_reference", "mp4", "text_wav", None, "text_wav",
     "undecodable"),
    ("silent_reference", "mp4", "silent_wav", None, "silent_wav", "silent"),
    ("nan_reference", "mp4", "nan_wav", None, "nan_wav",
     "non_finite (4000 NaN/inf samples)"),
    ("truncated_video", "truncated_mp4", "stereo", None, "truncated_mp4",
     "undecodable"),
    ("empty_video", "empty_mp4", "stereo", None, "empty_mp4",
     "empty (0 bytes)"),
    ("video_without_frames", "audio_only_mp4", "stereo", None,
     "audio_only_mp4", "no_frames"),
    ("folder_without_frames", "empty_frames", "stereo", None, "empty_frames",
     "no_frames"),
    ("untrained_workdir", "mp4", "stereo", "untrained",
     "generator/export", "no trained generator"),
    ("unknown_config", "mp4", "stereo", "judges", "config.json",
     "unknown experiment"),
]


def _bad_case(case, av_workdir, media_files, tmp_path):
  _, video, reference, make_workdir, named, _ = case
  def path(name):
    return str(media_files.get(name, tmp_path / name))
  workdir = {None: lambda: av_workdir,
             "untrained": lambda: _untrained(tmp_path, av_workdir),
             "judges": lambda: _judges_workdir(tmp_path)}[make_workdir]()
  named = (str(workdir / named) if make_workdir else path(named))
  return str(workdir), path(video), path(reference), named


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_error_line(case, av_workdir, media_files, tmp_path,
                                     capsys):
  workdir, video, reference, named = _bad_case(case, av_workdir, media_files,
                                               tmp_path)
  status = generate_command.run(workdir, video=video, reference=reference,
                                output=str(tmp_path / "out.wav"))
  captured = capsys.readouterr()
  assert status == 2
  assert captured.err.count("\n") == 1, captured.err
  assert captured.err.startswith(f"error: {named}: {case[5]}"), captured.err
  assert not (tmp_path / "out.wav").exists()


def test_wavegan_workdir_without_export(wavegan_workdir, tmp_path, capsys):
  workdir = _untrained(tmp_path, wavegan_workdir)
  assert generate_command.run(str(workdir), num_samples=2,
                              output_dir=str(tmp_path / "x")) == 2
  assert capsys.readouterr().err == (
      f"error: {workdir / 'wavegan' / 'export'}: no trained generator (train "
      "the wavegan stage first: launch/train.py --stages=wavegan)\n")


def test_script_exits_2_with_one_line(av_workdir, media_files, tmp_path):
  # One run of the script itself (the other cases above go through the same
  # generate_command.run in-process, to keep the test time down).
  case = next(c for c in BAD_INPUTS if c[0] == "silent_reference")
  workdir, video, reference, named = _bad_case(case, av_workdir, media_files,
                                               tmp_path)
  result = subprocess.run(
      [sys.executable, str(REPO / "launch" / "generate.py"),
       f"--workdir={workdir}", f"--video={video}", f"--reference={reference}",
       f"--output={tmp_path / 'out.wav'}"],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2, result.stderr
  assert result.stderr.count("\n") == 1, result.stderr
  assert result.stderr.startswith(f"error: {named}: {case[5]}")
  assert "Traceback" not in result.stderr
