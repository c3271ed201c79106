"""Tests for the folder builders: audio_folder and av_folder."""

import logging

import av
import numpy as np
import pytest

from wavegan_jax.data import audio_folder
from wavegan_jax.data import media
from wavegan_jax.data import pipeline

BAD_AUDIO = {  # file -> reason it must be skipped for
    "empty.wav": "empty",
    "truncated.wav": "undecodable",
    "text.wav": "undecodable",
    "nan.wav": "non_finite",
    "short.wav": "too_short",
    "silent.wav": "silent",
}


def _write_mp3(make_media, name, samples, rate=8000):
  path = make_media.path(name)
  with av.open(str(path), "w") as container:
    stream = container.add_stream("libmp3lame", rate=rate)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(samples.T.copy(), format="flt",
                                       layout="mono")
    frame.sample_rate = rate
    for packet in list(stream.encode(frame)) + list(stream.encode(None)):
      container.mux(packet)
  return path


def _audio_folder(make_media):
  """4 good files (wav, flac, mp3, stereo wav in a subfolder) and 6 bad."""
  tone = make_media.tone(10000)
  make_media.wav("a.wav", tone)
  make_media.wav("b.flac", tone[:5000])
  _write_mp3(make_media, "c.mp3", tone[:9000])
  make_media.wav("sub/d.wav", make_media.tone(4096, channels=2))
  make_media.raw("empty.wav", b"")
  good = make_media.wav("full.wav", tone).read_bytes()
  (make_media.folder / "full.wav").unlink()
  make_media.raw("truncated.wav", good[:3000])
  make_media.raw("text.wav", b"this is text\n" * 40)
  nan = tone.copy()
  nan[100] = np.inf
  make_media.wav("nan.wav", nan, subtype="FLOAT")
  make_media.wav("short.wav", tone[:1000])
  make_media.wav("silent.wav", np.zeros(5000, np.float32))
  return make_media.folder


def _build(name, folder, data_dir, **fields):
  builder, _ = pipeline.prepare_dataset(
      name, data_dir=str(data_dir), manual_dir=str(folder),
      builder_kwargs=fields)
  return builder, {split: list(builder.as_dataset(split=split)
                               .as_numpy_iterator())
                   for split in builder.info.splits}


def _assert_skips_logged(caplog, folder, expected):
  text = caplog.text
  for name, reason in expected.items():
    assert f"skipping {folder / name}: {reason} (" in text, name
  for reason in set(expected.values()):
    count = list(expected.values()).count(reason)
    assert f"skipped {count} file(s) in {folder}: {reason}" in text


def test_audio_folder_skips_bad_files_and_keeps_good(make_media, tmp_path,
                                                     caplog):
  folder = _audio_folder(make_media)
  with caplog.at_level(logging.WARNING):
    _, splits = _build("audio_folder", folder, tmp_path / "tfds",
                       sample_rate=8000, slice_len=4096, split_by="none")
  _assert_skips_logged(caplog, folder, BAD_AUDIO)
  examples = splits["train"]
  sources = sorted({e["source_id"].decode() for e in examples})
  assert sources == ["a.wav", "b.flac", "c.mp3", "sub/d.wav"]
  per_source = {s: sum(e["source_id"].decode() == s for e in examples)
                for s in sources}
  # 10000 // 4096 = 2; 5000 -> 1; mp3 adds codec padding to 9000 -> 2.
  assert per_source == {"a.wav": 2, "b.flac": 1, "c.mp3": 2, "sub/d.wav": 1}
  for example in examples:
    assert example["audio"].shape == (4096, 1)
    assert example["audio"].dtype == np.float32


def test_audio_folder_with_only_bad_files_is_an_error(make_media, tmp_path):
  make_media.raw("empty.wav", b"")
  make_media.raw("text.wav", b"text")
  with pytest.raises(ValueError, match=f"no usable file in {make_media.folder}"
                     ": 2 skipped"):
    _build("audio_folder", make_media.folder, tmp_path, split_by="none")


def test_audio_folder_wavegan_slicing_options(make_media, tmp_path):
  make_media.wav("x.wav", make_media.tone(3000))
  _, splits = _build("audio_folder", make_media.folder, tmp_path,
                     sample_rate=8000, slice_len=2048, num_channels=2,
                     pad_end=True, overlap_ratio=0.5, normalize=True,
                     split_by="none")
  audio = sorted((e["audio"] for e in splits["train"]),
                 key=lambda a: -np.count_nonzero(a))
  # hop 1024, pad_end: ceil(3000 / 1024) = 3 slices, stereo, peak 1.
  assert len(audio) == 3 and audio[0].shape == (2048, 2)
  assert np.isclose(max(np.abs(a).max() for a in audio), 1.0)
  np.testing.assert_array_equal(audio[0][:, 0], audio[0][:, 1])


def test_slice_audio_matches_hand_counts():
  samples = np.arange(10, dtype=np.float32)[:, None]
  no_pad = audio_folder.slice_audio(samples, 4)
  np.testing.assert_array_equal(no_pad[:, :, 0], [[0, 1, 2, 3], [4, 5, 6, 7]])
  padded = audio_folder.slice_audio(samples, 4, pad_end=True,
                                    overlap_ratio=0.5)
  assert padded.shape == (5, 4, 1)
  np.testing.assert_array_equal(padded[-1, :, 0], [8, 9, 0, 0])
  offset = audio_folder.slice_audio(samples, 4, offset=3,
                                    first_slice_only=True)
  np.testing.assert_array_equal(offset[:, :, 0], [[3, 4, 5, 6]])
  assert audio_folder.slice_audio(samples[:3], 4).shape == (0, 4, 1)


def test_audio_folder_fsdd_takes_split(make_media, tmp_path):
  for take in (0, 4, 5, 9):
    make_media.wav(f"3_theo_{take}.wav", make_media.tone(2000))
  _, splits = _build("audio_folder", make_media.folder, tmp_path,
                     config="fsdd", slice_len=1024)
  takes = {s: sorted(int(e["source_id"].decode()[7:-4]) for e in splits[s])
           for s in splits}
  assert takes == {"test": [0, 4], "train": [5, 9]}


def test_av_folder_clips_and_bad_files(make_media, tmp_path, caplog):
  # 2 s of audio at 8 kHz -> three 4096-sample clips (the third padded).
  make_media.video("talk.mp4", num_frames=50, fps=25, audio_seconds=1.4)
  make_media.video("side.mp4", num_frames=8, fps=25, audio_rate=None)
  make_media.wav("side.wav", make_media.tone(4096))
  make_media.video("mute.mp4", audio_rate=None)
  good = make_media.video("tmp.mp4").read_bytes()
  (make_media.folder / "tmp.mp4").unlink()
  make_media.raw("broken.mp4", good[:len(good) // 3])
  make_media.raw("empty.avi", b"")
  make_media.video("brief.mp4", num_frames=3, audio_rate=None)
  make_media.wav("brief.wav", make_media.tone(500))
  with caplog.at_level(logging.WARNING):
    _, splits = _build("av_folder", make_media.folder, tmp_path,
                       num_samples=4096, num_frames=16, frame_size=16,
                       split_by="none")
  _assert_skips_logged(caplog, make_media.folder, {
      "mute.mp4": "no_audio", "broken.mp4": "undecodable",
      "empty.avi": "empty", "brief.wav": "too_short"})
  examples = {e["target_id"].decode(): e for e in splits["train"]}
  assert sorted(examples) == ["side.mp4:0", "talk.mp4:0", "talk.mp4:1",
                              "talk.mp4:2"]
  track = media.load_video_audio(make_media.folder / "talk.mp4", 8000)
  for clip in range(3):
    example = examples[f"talk.mp4:{clip}"]
    assert example["video"].shape == (16, 16, 16, 1)
    assert example["target"].shape == (4096,)
    expected = track[clip * 4096:(clip + 1) * 4096, 0]
    np.testing.assert_allclose(example["target"][:len(expected)] / 32768,
                               expected, atol=1 / 32768)
    # Another segment of the same file is the reference.
    reference = example["reference_id"].decode()
    assert reference.startswith("talk.mp4:") and reference != f"talk.mp4:{clip}"
  # Frame brightness is 8 * source frame: clip 1 starts at 0.512 s = frame 12.
  assert abs(int(examples["talk.mp4:1"]["video"][0, 8, 8, 0]) - 96) <= 8
  side = examples["side.mp4:0"]
  np.testing.assert_allclose(side["target"] / 32768,
                             make_media.tone(4096)[:, 0],
                             atol=1 / 32768)
  assert side["reference_id"].decode().startswith("talk.mp4:")
  # side.mp4 is 0.32 s of video = 10 frames at 31.25 fps, then zeros; its
  # black first frame is shown at 0 and 32 ms.
  brightness = side["video"].reshape(16, -1).max(axis=1)
  np.testing.assert_allclose(brightness[:10], [0, 0, 8, 16, 24, 32, 32, 40,
                                               48, 56], atol=4)
  assert not brightness[10:].any()


def test_folder_builder_needs_a_folder(tmp_path):
  with pytest.raises(FileNotFoundError,
                     match="audio_folder/default is not prepared in"):
    pipeline.prepare_dataset("audio_folder", data_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError,
                     match=f"manual dir {tmp_path}/nope does not exist"):
    pipeline.prepare_dataset("av_folder", data_dir=str(tmp_path),
                             manual_dir=str(tmp_path / "nope"))


def test_folders_and_broken_links_named_like_audio_are_counted(
    make_media, tmp_path, caplog):
  """issue 40 case 9: such entries are skipped with a reason, not ignored."""
  make_media.wav("a.wav", make_media.tone(10000))
  folder = make_media.folder
  (folder / "x.wav").mkdir()
  (folder / "dangling.wav").symlink_to(folder / "nowhere.wav")
  (folder / "loop1.wav").symlink_to(folder / "loop2.wav")
  (folder / "loop2.wav").symlink_to(folder / "loop1.wav")
  with caplog.at_level(logging.WARNING):
    _, splits = _build("audio_folder", folder, tmp_path / "tfds",
                       sample_rate=8000, slice_len=4096, split_by="none")
  assert [e["source_id"] for e in splits["train"]] == [b"a.wav", b"a.wav"]
  _assert_skips_logged(caplog, folder, {
      "x.wav": "not_a_file", "dangling.wav": "not_a_file",
      "loop1.wav": "not_a_file", "loop2.wav": "not_a_file"})
  assert f"skipping {folder / 'x.wav'}: not_a_file (a folder)" in caplog.text
  assert (f"skipping {folder / 'loop1.wav'}: not_a_file (a link loop)"
          in caplog.text)
  assert (f"skipping {folder / 'dangling.wav'}: not_a_file (a dangling "
          "link)") in caplog.text
