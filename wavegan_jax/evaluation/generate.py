"""Generating audio from a trained workdir: the library of launch/generate.py.

Two kinds of workdir, told apart by <workdir>/config.json:
  audio-visual (an `acoustic` block): <workdir>/generator/export holds
    {'generator', 'acoustic', 'visual'}. `prepare_video` and
    `prepare_reference` turn any video and recording into the clip the model
    was trained on; `AVGenerator.generate` turns a batch of them into audio.
  unconditional WaveGAN (a `wavegan` block): <workdir>/wavegan/export holds
    {'generator'}; `WaveGANGenerator.generate` turns latents into audio and
    `render_previews` renders fixed latents for every checkpoint.

Every problem a user can fix raises `GenerateError` (or, from decoding,
`media.MediaError` / `FileNotFoundError`), whose message starts with the file.
The noise of example i is drawn from PRNGKey(seed_i) alone, so an output does
not depend on the batch it was generated in.
"""

import dataclasses
import fractions
import json
import pathlib
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax.data import media
from wavegan_jax.evaluation import digit_frames
from wavegan_jax.training import checkpointing

PathLike = media.PathLike
AV_KIND = "audio-visual"
WAVEGAN_KIND = "wavegan"
# The stage (workdir folder) that holds each kind's export.
WAVEGAN_STAGE = "wavegan"
# Silence between the clips of a preview: half a second, as the official
# WaveGAN's preview.
PREVIEW_GAP_SECONDS = 0.5
# Frames are decoded at most this large before `digit_frames` measures the
# digit (its box and centre need more pixels than the model's 32).
NORMALIZE_MAX_SIDE = 128


GenerateError = errors.GenerateError


# ---------------------------------------------------------------------------
# The workdir.


def read_workdir_config(workdir: PathLike
                        ) -> tuple[str, ml_collections.ConfigDict]:
  """Reads <workdir>/config.json and tells which kind of experiment it is.

  Args:
    workdir: a run directory written by launch/train.py.

  Returns:
    (AV_KIND or WAVEGAN_KIND, the resolved config).

  Raises:
    GenerateError: no such workdir, no or unreadable config.json, or a
      config that is neither audio-visual nor WaveGAN.
  """
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise GenerateError(workdir, "no such workdir")
  path = workdir / "config.json"
  if not path.is_file():
    raise GenerateError(path, "no such file: not a workdir written by "
                        "launch/train.py")
  try:
    raw = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as error:
    raise GenerateError(path, f"not valid JSON ({error})") from error
  if not isinstance(raw, dict):
    raise GenerateError(path, "not a config (expected a JSON object)")
  config = ml_collections.ConfigDict(raw)
  if "acoustic" in config:
    kind = AV_KIND
  elif "wavegan" in config:
    kind = WAVEGAN_KIND
  else:
    raise GenerateError(path, "unknown experiment: the config has neither "
                        "an acoustic nor a wavegan block, so there is no "
                        "generator to run")
  return kind, config


def export_dir(workdir: PathLike, kind: str) -> pathlib.Path:
  """Where the generator's params-only export of a workdir is."""
  stage = "generator" if kind == AV_KIND else WAVEGAN_STAGE
  return pathlib.Path(workdir) / stage / "export"


def check_export(workdir: PathLike, kind: str) -> pathlib.Path:
  """The export directory; GenerateError if the generator was not trained."""
  path = export_dir(workdir, kind)
  if not path.is_dir():
    stage = path.parent.name
    raise GenerateError(path, f"no trained generator (train the {stage} "
                        f"stage first: launch/train.py --stages={stage})")
  return path


def _load(path: PathLike, expected: Any, name: str) -> Any:
  """checkpointing.load_params with its errors turned into GenerateError."""
  try:
    return checkpointing.load_params(str(path), expected, name=name)
  except checkpointing.CheckpointMismatchError as error:
    raise GenerateError(path, f"params do not match config.json ({error})"
                        ) from error
  except (ValueError, OSError, KeyError, TypeError) as error:
    raise GenerateError(path, f"cannot read the params ({error})") from error


def _config_error(workdir, error):
  return GenerateError(pathlib.Path(workdir) / "config.json",
                       f"incomplete config ({type(error).__name__}: {error})")


# ---------------------------------------------------------------------------
# Audio-visual generation.


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """What one model input is: frames, samples and their rates."""
  num_frames: int
  num_samples: int
  sample_rate: int
  frame_size: int
  # Videos drawn to AV-digits' way of showing a digit
  # (`digit_frames.normalize_digit_frames`) rather than only resized.
  normalize_digits: bool = False

  @property
  def fps(self) -> fractions.Fraction:
    """Frames per second of the video (exact)."""
    return fractions.Fraction(self.num_frames * self.sample_rate,
                              self.num_samples)

  @property
  def seconds(self) -> float:
    return self.num_samples / self.sample_rate

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "ClipSpec":
    data = config.data
    # Workdirs written before the key: a model trained on AV-digits saw
    # only its drawing.
    normalize = data.get("normalize_digits", data.get("name") == "av_digits")
    return cls(num_frames=int(data.num_frames),
               num_samples=int(data.num_samples),
               sample_rate=int(data.sample_rate),
               frame_size=int(data.frame_size),
               normalize_digits=bool(normalize))


def fit_length(array: np.ndarray, length: int) -> np.ndarray:
  """Crops or zero-pads `array` along its first axis to `length`."""
  if array.shape[0] >= length:
    return array[:length]
  padding = [(0, length - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
  return np.pad(array, padding)


def prepare_video(path: PathLike, clip: ClipSpec) -> np.ndarray:
  """Decodes a video into the model's input clip.

  Any size, colour or frame rate: frames are resampled in time to clip.fps
  and converted to grayscale. With clip.normalize_digits they are then
  drawn as AV-digits draws a digit (`digit_frames`: light on black, MNIST's
  size and centre); otherwise resized to frame_size x frame_size (the
  aspect ratio not kept). A longer video contributes its first clip (a log
  line says so); a shorter one is padded with empty (black) frames.

  Args:
    path: a video file PyAV reads, an animated GIF, or a folder of frames.
    clip: the model's clip.

  Returns:
    uint8 [num_frames, frame_size, frame_size, 1].

  Raises:
    media.MediaError, FileNotFoundError: a file that cannot be used.
  """
  # Only the clip's first seconds are decoded (one frame more, to time the
  # last): memory does not grow with the input's length.
  normalize = clip.normalize_digits
  frames = media.load_video(
      path, fps=float(clip.fps), size=None if normalize else clip.frame_size,
      channels=1, max_seconds=decode_seconds(clip),
      max_side=NORMALIZE_MAX_SIDE if normalize else None)
  if normalize:
    frames = digit_frames.normalize_digit_frames(frames, clip.frame_size)
  seconds = media.video_seconds(path, float(clip.fps))
  count = (frames.shape[0] if seconds is None else
           int(np.floor(seconds * float(clip.fps) + 1e-6)))
  if count > clip.num_frames:
    logging.warning("%s: %d frames (%.2f s) at %.2f fps; the model takes "
                    "%.3f s, so only the first %d frames are used.", path,
                    count, count / clip.fps, float(clip.fps), clip.seconds,
                    clip.num_frames)
  return fit_length(frames, clip.num_frames)


def decode_seconds(clip: ClipSpec) -> float:
  """How much of an input video is decoded: the clip and one frame more."""
  return clip.seconds + 1.0 / float(clip.fps)


def prepare_reference(path: PathLike, clip: ClipSpec) -> np.ndarray:
  """Decodes a reference recording: mono, clip.sample_rate, num_samples.

  Args:
    path: any audio file soundfile or PyAV reads, any rate and channels.
    clip: the model's clip.

  Returns:
    float32 [num_samples] (cropped, or zero-padded at the end).

  Raises:
    media.MediaError: empty, undecodable, silent or non-finite audio.
    FileNotFoundError: no such file.
  """
  audio = media.load_audio(path, clip.sample_rate, num_channels=1)[:, 0]
  clipped = fit_length(audio, clip.num_samples)
  if not np.any(clipped):
    raise media.MediaError(path, "silent", f"the first {clip.seconds:.3f} s "
                           "are all zero")
  return clipped


class AVGenerator:
  """The audio-visual generator of a workdir, ready to run.

  Attributes:
    config: the resolved experiment config.
    clip: what one input clip is.
  """

  def __init__(self, workdir: PathLike,
               config: ml_collections.ConfigDict | None = None):
    """Loads the generator, acoustic and visual params of a workdir.

    Args:
      workdir: an audio-visual run directory with a generator export.
      config: its config (default: read from <workdir>/config.json).

    Raises:
      GenerateError: not an audio-visual workdir, no trained generator, or
        params that do not match the config.
    """
    if config is None:
      kind, config = read_workdir_config(workdir)
      if kind != AV_KIND:
        raise GenerateError(pathlib.Path(workdir) / "config.json",
                            "not an audio-visual experiment")
    path = check_export(workdir, AV_KIND)
    self.config = config
    try:
      self.clip = ClipSpec.from_config(config)
      self._modules = inference.av_models(config)
      self._noise_features = int(
          config.generator.model.get("noise_features", 0))
      expected = jax.eval_shape(self._init_params)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
      raise _config_error(workdir, error) from error
    self._params = _load(path, expected, "generator")
    self._generate = jax.jit(self._generate_batch)

  def _init_params(self):
    modules, rng = self._modules, jax.random.PRNGKey(0)
    inputs = inference.av_example_inputs(self.config)
    encoders = {
        "acoustic": modules["acoustic"].init(rng, inputs["target"])["params"],
        "visual": modules["visual"].init(rng, inputs["video"])["params"]}
    contexts = inference.conditioning(modules, encoders, inputs)
    generator = modules["generator"].init(
        rng, *contexts, z=self._noise(jnp.zeros((1,), jnp.int32)))["params"]
    return {"generator": generator, **encoders}

  def _noise(self, seeds):
    if not self._noise_features:
      return None
    return jax.vmap(lambda seed: jax.random.normal(
        jax.random.PRNGKey(seed), (self._noise_features,)))(seeds)

  def _generate_batch(self, params, videos, references, seeds):
    batch = {"video": videos, "reference": references}
    return inference.generate(self._modules, params["generator"], params,
                              batch, self._noise(seeds))

  def generate(self, videos: np.ndarray, references: np.ndarray,
               seeds: Sequence[int]) -> np.ndarray:
    """Generates one waveform per (video, reference, seed).

    Args:
      videos: uint8 [B, num_frames, frame_size, frame_size, 1].
      references: float32 [B, num_samples].
      seeds: B ints; example i's noise comes from PRNGKey(seeds[i]).

    Returns:
      float32 [B, num_samples] waveforms at clip.sample_rate.
    """
    waveforms = self._generate(self._params, jnp.asarray(videos, jnp.uint8),
                               jnp.asarray(references, jnp.float32),
                               jnp.asarray(seeds, jnp.int32))
    return np.asarray(waveforms, np.float32)


# ---------------------------------------------------------------------------
# Unconditional WaveGAN.


class WaveGANGenerator:
  """The unconditional WaveGAN generator of a workdir.

  Attributes:
    config: the resolved experiment config.
    sample_rate: Hz of the generated audio.
    slice_len: samples per generated clip.
    num_channels: audio channels.
    latent_dim: size of z.
    representation: 'waveform' (WaveGAN) or 'spectrogram' (SpecGAN).
  """

  def __init__(self, workdir: PathLike,
               config: ml_collections.ConfigDict | None = None,
               load_export: bool = True):
    """Builds the generator and (by default) loads its export.

    Args:
      workdir: an unconditional WaveGAN run directory.
      config: its config (default: read from <workdir>/config.json).
      load_export: False builds the model only (see `load_checkpoint`).

    Raises:
      GenerateError: not a WaveGAN workdir, no trained generator, or params
        that do not match the config.
    """
    self.workdir = pathlib.Path(workdir)
    if config is None:
      kind, config = read_workdir_config(workdir)
      if kind != WAVEGAN_KIND:
        raise GenerateError(self.workdir / "config.json",
                            "not an unconditional WaveGAN experiment")
    self.config = config
    try:
      builder = config.data.builder_kwargs
      self.sample_rate = int(builder.sample_rate)
      self.slice_len = int(builder.slice_len)
      self.num_channels = int(builder.num_channels)
      self.latent_dim = int(config.wavegan.latent_dim)
      self.representation = inference.representation_of(config)
      self._generator = inference.wavegan_models(config)[0]
      self._expected = jax.eval_shape(lambda: self._generator.init(
          jax.random.PRNGKey(0), jnp.zeros((1, self.latent_dim)))["params"])
    except (AttributeError, KeyError, TypeError, ValueError) as error:
      raise _config_error(workdir, error) from error
    self._params = None
    if load_export:
      path = check_export(workdir, WAVEGAN_KIND)
      self._params = _load(path, {"generator": self._expected},
                           "wavegan")["generator"]
    self._generate = jax.jit(
        lambda params, z: self._generator.apply({"params": params}, z))
    self._round_trip = None

  def checkpoint_steps(self) -> list[int]:
    """The steps saved in <workdir>/wavegan/checkpoints, ascending."""
    folder = self.workdir / WAVEGAN_STAGE / "checkpoints"
    if not folder.is_dir():
      return []
    return sorted(int(d.name) for d in folder.iterdir()
                  if d.name.isdigit() and (d / "default").is_dir())

  def load_checkpoint(self, step: int) -> None:
    """Uses the generator params of one training checkpoint."""
    path = self.workdir / WAVEGAN_STAGE / "checkpoints" / str(step)
    params = _load(path, None, "wavegan")
    if "generator" not in params:
      raise GenerateError(path, "the checkpoint holds no generator params")
    try:
      checkpointing.check_tree_matches(params["generator"], self._expected,
                                       f"generator params at {path}")
    except checkpointing.CheckpointMismatchError as error:
      raise GenerateError(path, str(error)) from error
    self._params = params["generator"]

  def latents(self, num: int, seed: int) -> np.ndarray:
    """z ~ U[-1, 1]^latent_dim for `num` clips, from PRNGKey(seed)."""
    return np.asarray(inference.sample_latents(
        jax.random.PRNGKey(seed), num, self.latent_dim))

  def generate(self, latents: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Waveforms float32 [N, slice_len, num_channels] for latents [N, D].

    Batches are padded to `batch_size` so that one compilation serves all.
    """
    return self._batched(self._generate, latents, batch_size)

  def _batched(self, fn, inputs, batch_size):
    """fn(params, batch) over `inputs` in padded batches, float32."""
    if self._params is None:
      raise ValueError("no params loaded: call load_checkpoint first")
    outputs = []
    for start in range(0, len(inputs), batch_size):
      chunk = inputs[start:start + batch_size]
      padded = fit_length(chunk, min(batch_size, len(inputs)))
      outputs.append(np.asarray(fn(self._params, padded))[:len(chunk)])
    return np.concatenate(outputs).astype(np.float32)

  def round_trip(self, audio: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Real clips [N, slice_len, 1] through a SpecGAN's spectrogram and back.

    Raises:
      ValueError: a waveform generator, or no params loaded.
    """
    if self.representation != "spectrogram":
      raise ValueError(f"round_trip needs a spectrogram generator; "
                       f"{self.workdir} is {self.representation!r}")
    if self._round_trip is None:
      self._round_trip = jax.jit(lambda params, x: self._generator.apply(
          {"params": params}, x, method="round_trip"))
    return self._batched(self._round_trip, audio, batch_size)

  def preview(self, latents: np.ndarray) -> np.ndarray:
    """The clips of `latents` one after another, with silences between.

    Returns:
      float32 [num_clips * slice_len + (num_clips - 1) * gap, num_channels].
    """
    gap = np.zeros((int(PREVIEW_GAP_SECONDS * self.sample_rate),
                    self.num_channels), np.float32)
    clips = []
    for index, clip in enumerate(self.generate(latents)):
      clips.extend([gap, clip] if index else [clip])
    return np.concatenate(clips)
