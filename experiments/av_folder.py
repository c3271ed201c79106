r"""Audio-visual WaveGAN on your own videos (the `av_folder` builder).

The folder holds video files with an audio track (mp4, mov, webm, avi) or
video files with an audio file of the same stem (wav, flac, ogg, mp3); it is
cut into clips of `data.num_samples` samples and `data.num_frames` frames
(grayscale, `data.frame_size` pixels square). Models, losses and stages are
those of experiments/av_digits.py with the same variants (tiny, quick,
default); `builder_kwargs` passes the folder builder's other fields
(split_by, test_fraction, seed).

Run:
  python launch/train.py --config=experiments/av_folder.py \
      --manual_dir=/path/to/videos --workdir=workdirs/my_videos
"""

import importlib.util
import pathlib

# Loaded by path: launch scripts read config files by path, not as a package.
_AV_DIGITS_SPEC = importlib.util.spec_from_file_location(
    "av_digits_config", pathlib.Path(__file__).with_name("av_digits.py"))
_av_digits = importlib.util.module_from_spec(_AV_DIGITS_SPEC)
_AV_DIGITS_SPEC.loader.exec_module(_av_digits)


def get_config(arg=None):
  """The av_digits config of the same variant, reading `av_folder`."""
  config = _av_digits.get_config(arg).unlock()
  config.data.name = "av_folder"
  config.data.builder_kwargs = dict(split_by="hash", test_fraction=0.1,
                                    seed=0)
  return config.lock()
