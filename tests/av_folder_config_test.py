"""The av_folder experiment: a user's folder of videos through the stages."""

import json

import pytest

from experiments import av_folder
from wavegan_jax.data import batches
from wavegan_jax.training import trainer


def test_builder_fields_follow_the_clip_geometry():
  config = av_folder.get_config("tiny")
  assert config.data.name == "av_folder"
  fields = batches.data_kwargs(config)
  assert fields == dict(split_by="hash", test_fraction=0.1, seed=0,
                        sample_rate=8000, num_samples=8192, num_frames=32,
                        frame_size=32)
  assert config.train.batch_size == 4 and config.variant == "tiny"


@pytest.mark.slow
def test_acoustic_and_visual_stages_train_on_a_video_folder(make_media,
                                                            tmp_path):
  for i in range(6):  # 2 s each: two 8192-sample clips per file at 8 kHz.
    make_media.video(f"clip_{i}.mp4", num_frames=50, fps=25, size=48)
  config = av_folder.get_config("tiny").unlock()
  config.acoustic.train.num_steps = 2
  config.visual.train.num_steps = 2
  config.train.log_every = 1
  results = trainer.train_and_evaluate(
      config.lock(), str(tmp_path / "run"), stages=["acoustic", "visual"],
      manual_dir=str(make_media.folder), data_dir=str(tmp_path / "tfds"))
  assert set(results) == {"acoustic", "visual"}
  for stage in results:
    lines = (tmp_path / "run" / stage / "metrics.jsonl").read_text()
    assert [json.loads(line)["step"] for line in lines.splitlines()] == [1, 2]
    assert results[stage]["loss"] > 0
