"""AV-digits test examples offered by the demo page: one per digit.

Read from the prepared TFDS data (or built from the raw FSDD / MNIST copies
when a manual folder is given); never downloaded, so the page starts offline.
"""

import dataclasses

from absl import logging
import ml_collections
import numpy as np

from wavegan_jax.data import pipeline


@dataclasses.dataclass(frozen=True)
class Example:
  """One test example, ready for the generator.

  Attributes:
    name: what the page lists, e.g. 'digit 3, speaker jackson'.
    frames: uint8 [num_frames, size, size, 1], the model's video clip.
    reference: float32 [num_samples], the reference recording.
    target: float32 [num_samples], the real recording the video shows.
  """
  name: str
  frames: np.ndarray
  reference: np.ndarray
  target: np.ndarray


def load_test_examples(config: ml_collections.ConfigDict, *,
                       data_dir: str | None = None,
                       manual_dir: str | None = None) -> list[Example]:
  """The first test example of each digit, ordered by digit.

  Args:
    config: an audio-visual workdir's config (its `data` block).
    data_dir: the TFDS data dir holding the prepared data.
    manual_dir: the raw FSDD / MNIST folder, used to prepare the data when
      data_dir does not hold it yet.

  Returns:
    Up to 10 examples; none (and a log line) when the data set is not
    AV-digits or is neither prepared nor preparable from manual_dir.
  """
  name = config.data.name
  if name != "av_digits":
    logging.warning("No examples to pick: the data set is %s, not "
                    "av_digits.", name)
    return []
  builder_kwargs = dict(config.data.builder_kwargs)
  builder = pipeline.get_builder(name, data_dir, builder_kwargs)
  if manual_dir is None and not builder.is_prepared():
    logging.warning("No examples to pick: av_digits is not prepared in %s; "
                    "pass --data_dir or --manual_dir.",
                    data_dir or "the TFDS default folder")
    return []
  dataset = pipeline.whole_split(name, "test", builder_kwargs=builder_kwargs,
                                 data_dir=data_dir, manual_dir=manual_dir)
  speaker_names = builder.info.features["speaker"].names
  found = {}
  for batch in dataset.as_numpy_iterator():
    for index, digit in enumerate(batch["digit"]):
      digit = int(digit)
      if digit in found:
        continue
      speaker = speaker_names[int(batch["speaker"][index])]
      found[digit] = Example(
          name=f"digit {digit}, speaker {speaker}",
          frames=batch["video"][index],
          reference=batch["reference"][index].astype(np.float32) / 32768.0,
          target=batch["target"][index].astype(np.float32) / 32768.0)
    if len(found) == 10:
      break
  return [found[digit] for digit in sorted(found)]
