"""The WaveGAN stage's adversarial options, read from its config and checked.

What `stages/wavegan.make_spec` hands its step besides the models: the
PacGAN pack, the gradient-penalty subset, the minibatch-std group, the
mode-seeking and loudness terms and the simultaneous update. As in
config_checks.py, a value that cannot work raises a UserFacingError naming
the key, before anything trains.
"""

import functools

import jax.numpy as jnp

from wavegan_jax import errors
from wavegan_jax import spectral


def pack_from(adversarial, batch_size: int) -> int:
  """`adversarial.pack` (1 or absent: no packing), checked.

  Raises:
    UserFacingError: unless it is an int >= 1 that divides batch_size.
  """
  pack = adversarial.get("pack", 1)
  if (isinstance(pack, bool) or not isinstance(pack, int) or pack < 1
      or batch_size % pack):
    raise errors.UserFacingError(
        f"wavegan.adversarial.pack must be an int >= 1 that divides "
        f"train.batch_size ({batch_size}), got {pack!r}")
  return pack


def gp_examples_from(adversarial, batch_size: int):
  """The critic update's gradient-penalty subset size; None for all.

  `adversarial.gp_examples` 0 (or absent) means the whole per-update batch
  of the critic's inputs (packs, under `adversarial.pack`).

  Raises:
    UserFacingError: unless it is an int in [0, batch_size].
  """
  count = adversarial.get("gp_examples", 0)
  if (isinstance(count, bool) or not isinstance(count, int)
      or not 0 <= count <= batch_size):
    raise errors.UserFacingError(
        f"wavegan.adversarial.gp_examples must be an int in [0, "
        f"{batch_size}] (train.batch_size / pack; 0: all), got {count!r}")
  return None if count in (0, batch_size) else count


def check_minibatch_std_group(discriminator, batch_size: int,
                              gp_examples) -> None:
  """Checks `wavegan.discriminator.minibatch_std_group` against the batches.

  The critic scores batches of batch_size (train.batch_size / pack) and,
  under a penalty subset, of gp_examples; each must split into groups of
  min(group, batch).

  Raises:
    UserFacingError: for a group that is not an int >= 0, or a batch it
      does not divide.
  """
  group = discriminator.get("minibatch_std_group", 0)
  if isinstance(group, bool) or not isinstance(group, int) or group < 0:
    raise errors.UserFacingError(
        f"wavegan.discriminator.minibatch_std_group must be an int >= 0 "
        f"(0: off), got {group!r}")
  for batch in (batch_size, gp_examples):
    if group and batch and batch % min(group, batch):
      raise errors.UserFacingError(
          f"wavegan.discriminator.minibatch_std_group={group} does not "
          f"divide the critic's batch of {batch} (train.batch_size / pack "
          f"= {batch_size}, gp_examples {gp_examples or 'all'})")


def mode_seeking_weight_from(adversarial, batch_size: int) -> float:
  """`adversarial.mode_seeking_weight` (0 or absent: off), checked.

  Raises:
    UserFacingError: unless it is a finite number >= 0, and for a weight
      > 0 with an odd batch_size (the term pairs the batch's halves).
  """
  weight = _term_weight(adversarial, "mode_seeking_weight")
  if weight and batch_size % 2:
    raise errors.UserFacingError(
        f"wavegan.adversarial.mode_seeking_weight={weight} pairs the "
        f"generator's batch in halves and needs an even train.batch_size, "
        f"got {batch_size}")
  return weight


def _term_weight(adversarial, name: str) -> float:
  """`adversarial[name]` (0 or absent: off) as a float, checked finite >= 0.

  Raises:
    UserFacingError: for anything else.
  """
  weight = adversarial.get(name, 0.0)
  if (isinstance(weight, bool) or not isinstance(weight, (int, float))
      or not 0 <= weight < float("inf")):
    raise errors.UserFacingError(
        f"wavegan.adversarial.{name} must be a finite number >= 0 (0: off), "
        f"got {weight!r}")
  return float(weight)


def _check_reads_waveforms(setting: str, representation: str) -> None:
  """A term on the generator's waveforms refuses a SpecGAN's outputs."""
  if representation != "waveform":
    raise errors.UserFacingError(
        f"wavegan.adversarial.{setting} reads waveforms; a {representation} "
        f"generator's outputs are not")


MODE_SEEKING_SPACES = ("waveform", "log_mel")


def mode_seeking_features_from(adversarial, representation: str,
                               sample_rate: int):
  """What `adversarial.mode_seeking_space` measures the distance on.

  'waveform' (the default; Mao et al. measure pixels): the clips
  themselves, so None. 'log_mel': `log_mel_features`, which two
  independent noises of one level (say in the silence after the word)
  barely tell apart, while their waveforms differ everywhere.

  Raises:
    UserFacingError: for another space, or 'log_mel' on a SpecGAN (its
      outputs are spectrograms already).
  """
  space = adversarial.get("mode_seeking_space", "waveform")
  if space not in MODE_SEEKING_SPACES:
    raise errors.UserFacingError(
        f"wavegan.adversarial.mode_seeking_space must be one of "
        f"{', '.join(MODE_SEEKING_SPACES)}, got {space!r}")
  if space == "waveform":
    return None
  _check_reads_waveforms(f"mode_seeking_space={space!r}", representation)
  return functools.partial(log_mel_features, sample_rate=sample_rate)


def log_mel_features(audio, sample_rate: int, floor_dbfs: float = -50.0):
  """[B, samples, C] clips -> [B, C * frames, mels] floored log-mels.

  The floor is white noise at floor_dbfs, the level `silent_fraction`
  calls silence (`spectral.floored_log_mel`).
  """
  batch, samples, channels = audio.shape
  per_channel = jnp.moveaxis(audio, -1, 1).reshape(batch * channels, samples)
  mels = spectral.floored_log_mel(per_channel, sample_rate, floor_dbfs)
  return mels.reshape(batch, -1, mels.shape[-1])


def loudness_from(adversarial, representation: str, builder_kwargs) -> dict:
  """The step's loudness_weight and loudness_frame_length, checked.

  `adversarial.loudness_weight` (0 or absent: off) weighs
  `losses.loudness_distance` over 32 ms frames, the frames
  `silent_fraction` reads.

  Raises:
    UserFacingError: unless the weight is a finite number >= 0, and for a
      weight > 0 on a SpecGAN or on clips shorter than one frame.
  """
  weight = _term_weight(adversarial, "loudness_weight")
  frame_length = max(1, round(0.032 * builder_kwargs.sample_rate))
  if weight:
    _check_reads_waveforms(f"loudness_weight={weight}", representation)
  if weight and builder_kwargs.slice_len < frame_length:
    raise errors.UserFacingError(
        f"wavegan.adversarial.loudness_weight={weight} needs clips of at "
        f"least one 32 ms frame ({frame_length} samples), got slice_len "
        f"{builder_kwargs.slice_len}")
  return {"loudness_weight": weight,
          "loudness_frame_length": frame_length}


def loudness_start_step_from(adversarial, loudness_weight: float,
                             num_steps: int) -> int:
  """`adversarial.loudness_start_step` (0 or absent: from the first step).

  Steps before it train without the loudness term (a separately compiled
  step), e.g. to let the mode-seeking term spread the digits first and
  hold the silence after the word only for the last steps.

  Raises:
    UserFacingError: unless an int in [0, num_steps), and for a start
      > 0 with the loudness term off.
  """
  start = adversarial.get("loudness_start_step", 0) or 0
  if isinstance(start, bool) or not isinstance(start, int) or not (
      0 <= start < num_steps):
    raise errors.UserFacingError(
        f"wavegan.adversarial.loudness_start_step must be an int in [0, "
        f"num_steps={num_steps}), got {start!r}")
  if start and not loudness_weight:
    raise errors.UserFacingError(
        f"wavegan.adversarial.loudness_start_step={start} needs "
        "wavegan.adversarial.loudness_weight > 0")
  return start


def simultaneous_from(adversarial) -> bool:
  """Whether `adversarial.simultaneous` asks for `_simultaneous_step`.

  Raises:
    UserFacingError: with a loss other than 'wgan-gp' or d_steps other
      than 1 (the shared backward pass needs both).
  """
  simultaneous = bool(adversarial.get("simultaneous", False))
  if simultaneous and (adversarial.loss != "wgan-gp"
                       or adversarial.d_steps != 1):
    raise errors.UserFacingError(
        f"wavegan.adversarial.simultaneous needs loss='wgan-gp' and "
        f"d_steps=1 (one backward pass serves both networks only then), got "
        f"loss={adversarial.loss!r}, d_steps={adversarial.d_steps!r}")
  return simultaneous
