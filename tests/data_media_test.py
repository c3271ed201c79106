"""Tests for wavegan_jax/data/media.py: decoding and the error reasons."""

import numpy as np
from PIL import Image
import pytest

from wavegan_jax.data import media


def test_load_audio_resamples_and_sets_channels(make_media):
  path = make_media.wav("tone.wav", make_media.tone(8000, channels=2))
  stereo = media.load_audio(path, num_channels=None)
  mono = media.load_audio(path, 16000, num_channels=1)
  assert stereo.shape == (8000, 2) and stereo.dtype == np.float32
  assert mono.shape == (16000, 1) and mono.dtype == np.float32
  doubled = media.load_audio(make_media.wav("m.wav", make_media.tone(100)),
                             num_channels=2)
  np.testing.assert_array_equal(doubled[:, 0], doubled[:, 1])
  # PCM-16 round trip: soundfile's float is int / 32768.
  np.testing.assert_allclose(stereo, make_media.tone(8000, channels=2),
                             atol=1 / 32768)


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_load_audio_compressed_formats(make_media, suffix):
  path = make_media.path("tone" + suffix)
  import soundfile  # pylint: disable=g-import-not-at-top
  soundfile.write(str(path), make_media.tone(4000), 8000)
  audio = media.load_audio(path, 8000)
  assert audio.shape == (4000, 1)
  assert 0.25 < np.abs(audio).max() < 0.35


def _bad_audio(make_media, case):
  tone = make_media.tone(4000)
  if case == "empty":
    return make_media.raw("empty.wav", b"")
  if case == "truncated":
    good = make_media.wav("full.wav", tone).read_bytes()
    return make_media.raw("truncated.wav", good[:len(good) // 2])
  if case == "text":
    return make_media.raw("text.wav", b"not audio at all\n" * 20)
  if case == "nan":
    tone[7] = np.nan
    return make_media.wav("nan.wav", tone, subtype="FLOAT")
  if case == "short":
    return make_media.wav("short.wav", tone[:10])
  if case == "silent":
    return make_media.wav("silent.wav", np.zeros(4000, np.float32))
  raise ValueError(case)


@pytest.mark.parametrize("case,reason,detail", [
    ("empty", "empty", "0 bytes"),
    ("truncated", "undecodable",
     "truncated: data chunk declares 8000 bytes, file holds 3978"),
    ("text", "undecodable", "Invalid data"),
    ("nan", "non_finite", "1 NaN/inf samples"),
    ("short", "too_short", "10 samples, need 100"),
    ("silent", "silent", "all samples are zero"),
])
def test_load_audio_bad_input(make_media, case, reason, detail):
  path = _bad_audio(make_media, case)
  with pytest.raises(media.MediaError) as caught:
    media.load_audio(path, 8000, min_samples=100)
  assert caught.value.reason == reason
  assert caught.value.path == str(path)
  assert str(caught.value).startswith(f"{path}: {reason} (")
  assert detail in str(caught.value)
  assert isinstance(caught.value, ValueError)


def test_load_video_retimes_and_resizes(make_media):
  path = make_media.video("clip.mp4", num_frames=30, fps=25)
  video = media.load_video(path, fps=50, size=16, channels=1)
  # 30 frames at 25 fps = 1.2 s = 60 frames at 50 fps, each source frame
  # shown twice.
  assert video.shape == (60, 16, 16, 1) and video.dtype == np.uint8
  levels = video[:, 8, 8, 0].astype(int)
  np.testing.assert_allclose(levels[::2], 8 * np.arange(30), atol=4)
  np.testing.assert_array_equal(levels[::2], levels[1::2])
  rgb = media.load_video(path, size=(8, 12), channels=3)
  assert rgb.shape == (30, 8, 12, 3)


def test_load_video_audio_track(make_media):
  path = make_media.video("clip.mp4", num_frames=25, fps=25)
  audio = media.load_video_audio(path, 16000)
  assert audio.shape[1] == 1 and audio.dtype == np.float32
  # One second of tone, give or take the AAC codec's padding.
  assert 16000 <= audio.shape[0] <= 16000 + 4096
  assert 0.2 < np.abs(audio).max() < 0.4


def test_gif_and_frame_folder(make_media):
  frames = [Image.fromarray(np.full((10, 10), 40 * i, np.uint8))
            for i in range(4)]
  gif = make_media.path("anim.gif")
  frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100,
                 loop=0)
  video = media.load_video(gif, fps=20)
  assert video.shape == (8, 10, 10, 1)
  np.testing.assert_array_equal(video[:, 0, 0, 0],
                                [0, 0, 40, 40, 80, 80, 120, 120])
  folder = make_media.path("frames")
  folder.mkdir()
  for i, frame in enumerate(frames):
    frame.save(folder / f"{i:03d}.png")
  video = media.load_video(folder, size=5)
  assert video.shape == (4, 5, 5, 1)
  np.testing.assert_array_equal(video[:, 2, 2, 0], [0, 40, 80, 120])


def test_bad_video_reasons(make_media):
  good = make_media.video("good.mp4").read_bytes()
  broken = make_media.raw("broken.mp4", good[:len(good) // 3])
  with pytest.raises(media.MediaError, match="broken.mp4: undecodable"):
    media.load_video(broken)
  silent_video = make_media.video("mute.mp4", audio_rate=None)
  with pytest.raises(media.MediaError, match="mute.mp4: no_audio"):
    media.load_video_audio(silent_video)
  audio_only = make_media.path("audio_only.mp4")
  import av  # pylint: disable=g-import-not-at-top
  with av.open(str(audio_only), "w") as container:
    stream = container.add_stream("aac", rate=8000)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(make_media.tone(2000).T.copy(),
                                       format="flt", layout="mono")
    frame.sample_rate = 8000
    for packet in list(stream.encode(frame)) + list(stream.encode(None)):
      container.mux(packet)
  with pytest.raises(media.MediaError, match="audio_only.mp4: no_frames"):
    media.load_video(audio_only)
  with pytest.raises(media.MediaError, match="empty.mp4: empty"):
    media.load_video(make_media.raw("empty.mp4", b""))


def test_missing_file_and_bad_reason():
  with pytest.raises(FileNotFoundError, match="/no/such.wav: no such file"):
    media.load_audio("/no/such.wav")
  with pytest.raises(ValueError, match="unknown media error reason"):
    media.MediaError("x.wav", "strange")
