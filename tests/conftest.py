"""Shared test fixtures: where the raw FSDD / MNIST copies live."""

import importlib.util
import os
import pathlib

import pytest

# Before any test imports numba (through librosa): see wavegan_jax/__init__.py.
os.environ.setdefault("NUMBA_CPU_NAME", "generic")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def manual_dir_path() -> pathlib.Path:
  """The raw data folder: $WAVEGAN_MANUAL_DIR, else ../shared/data."""
  env = os.environ.get("WAVEGAN_MANUAL_DIR")
  # Absolute: tests link to files under it from temporary folders.
  return (pathlib.Path(env) if env else
          REPO_ROOT.parent / "shared" / "data").resolve()


def tiny_specgan_config():
  """experiments/wavegan.py:tiny with SpecGAN's models at tiny widths."""
  from experiments import wavegan  # pylint: disable=g-import-not-at-top
  config = wavegan.get_config("tiny").unlock()
  config.wavegan.representation = "spectrogram"
  config.wavegan.model = dict(dim=2, kernel_size=5, griffin_lim_iterations=2)
  config.wavegan.discriminator = dict(dim=2, kernel_size=5)
  return config.lock()


def assert_trees_equal(a, b):
  """Same tree structure and bit-identical leaves."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  leaves_a, tree_a = jax.tree_util.tree_flatten(a)
  leaves_b, tree_b = jax.tree_util.tree_flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# The launch script whose absl flags are registered now: (name, module,
# the flag names it defined).
_loaded_launch_script = [None, None, ()]


def load_launch_script(name: str):
  """launch/<name>.py as a module whose absl flags are registered.

  Launch scripts define their flags at import and share some names
  (--manual_dir, --batch_size), so two of them cannot be registered in one
  process, which a pytest-xdist worker may need: loading another script
  first removes the flags the previous one defined.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  current_name, current_module, current_flags = _loaded_launch_script
  if name == current_name:
    return current_module
  for flag in current_flags:
    delattr(flags.FLAGS, flag)
  before = set(flags.FLAGS)
  spec = importlib.util.spec_from_file_location(
      f"launch_{name}", REPO_ROOT / "launch" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  _loaded_launch_script[:] = [name, module,
                              tuple(set(flags.FLAGS) - before)]
  return module


@pytest.fixture(scope="session")
def manual_dir() -> pathlib.Path:
  path = manual_dir_path()
  if not (path / "fsdd" / "recordings").is_dir():
    pytest.fail(f"FSDD copy not found under {path}; set WAVEGAN_MANUAL_DIR")
  return path


# --- Data-layer fixtures: media files the tests write themselves. ---


class MediaFactory:
  """Writes small audio/video files (good and broken) into a folder."""

  def __init__(self, folder: pathlib.Path):
    self.folder = folder

  def path(self, name: str) -> pathlib.Path:
    path = self.folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path

  def tone(self, num_samples: int, rate: int = 8000, channels: int = 1,
           amplitude: float = 0.3):
    import numpy as np  # pylint: disable=g-import-not-at-top
    phase = np.arange(num_samples)[:, None] * 2 * np.pi * 440 / rate
    return (amplitude * np.sin(phase * np.arange(1, channels + 1))).astype(
        np.float32)

  def wav(self, name: str, samples, rate: int = 8000,
          subtype: str = "PCM_16") -> pathlib.Path:
    import soundfile  # pylint: disable=g-import-not-at-top
    path = self.path(name)
    soundfile.write(str(path), samples, rate, subtype=subtype,
                    format="WAV" if path.suffix == ".wav" else None)
    return path

  def raw(self, name: str, data: bytes) -> pathlib.Path:
    path = self.path(name)
    path.write_bytes(data)
    return path

  def video(self, name: str, num_frames: int = 30, fps: int = 25,
            size: int = 32, audio_rate: int | None = 8000,
            audio_seconds: float | None = None) -> pathlib.Path:
    """An mpeg4 video whose frame i is filled with 8*i, with AAC audio."""
    import av  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    path = self.path(name)
    with av.open(str(path), "w") as container:
      stream = container.add_stream("mpeg4", rate=fps)
      stream.width = stream.height = size
      stream.pix_fmt = "yuv420p"
      if audio_rate:
        audio_stream = container.add_stream("aac", rate=audio_rate)
        audio_stream.layout = "mono"
      for i in range(num_frames):
        image = np.full((size, size, 3), (8 * i) % 256, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in stream.encode(frame):
          container.mux(packet)
      for packet in stream.encode():
        container.mux(packet)
      if audio_rate:
        seconds = audio_seconds or num_frames / fps
        samples = self.tone(int(audio_rate * seconds), audio_rate)
        frame = av.AudioFrame.from_ndarray(samples.T.copy(), format="flt",
                                           layout="mono")
        frame.sample_rate = audio_rate
        for packet in audio_stream.encode(frame):
          container.mux(packet)
        for packet in audio_stream.encode(None):
          container.mux(packet)
    return path


@pytest.fixture
def make_media(tmp_path) -> MediaFactory:
  return MediaFactory(tmp_path / "media")


@pytest.fixture(scope="session")
def av_digits_data_dir(manual_dir, tmp_path_factory) -> pathlib.Path:
  """A TFDS data dir holding av_digits/default, built once per test run.

  $WAVEGAN_TEST_DATA_DIR, when set, is used (and filled if needed) instead of
  a fresh temporary folder.
  """
  from wavegan_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  env = os.environ.get("WAVEGAN_TEST_DATA_DIR")
  data_dir = pathlib.Path(env) if env else tmp_path_factory.mktemp("tfds")
  pipeline.prepare_dataset("av_digits", data_dir=str(data_dir),
                           manual_dir=str(manual_dir))
  return data_dir


# Fixtures that train a workdir end to end: every test using one is slow.
TRAINED_FIXTURES = frozenset((
    "tiny_run", "trained", "av_results", "tiny_wavegan", "av_workdir",
    "wavegan_workdir", "single_run", "first_sweep"))


def pytest_collection_modifyitems(items):
  """Marks `slow` every test that needs a trained workdir."""
  for item in items:
    if TRAINED_FIXTURES.intersection(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.slow)


def config_with(module, variant, **overrides):
  """The locked config of `module`'s variant with dotted-key overrides."""
  config = module.get_config(variant).unlock()
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config.lock()


def tiny_av_config(**overrides):
  """The locked AV-digits 'tiny' config with dotted-key overrides."""
  from experiments import av_digits  # pylint: disable=g-import-not-at-top
  return config_with(av_digits, "tiny", **overrides)
