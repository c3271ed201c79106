"""What a stage reads: TFDS builder settings, host batches, whole splits.

`host_batches` is the resumable, seeded input stream of a train step (each
process keeps its own rows of the global batch); `split_clips` reads a
whole split in file order, for held-out scores, evaluation and probes.
"""

from typing import Callable, Iterator, Optional, Sequence

import jax
import ml_collections
import numpy as np

from wavegan_jax import errors
from wavegan_jax.data import pipeline


def data_kwargs(config: ml_collections.ConfigDict) -> dict:
  """The TFDS builder name and config fields of an experiment's data."""
  data = config.data
  fields = dict(data.get("builder_kwargs", {}))
  if data.name in ("av_digits", "av_folder"):
    # The clip geometry the models are built for is the data's too.
    fields.update(sample_rate=data.sample_rate, num_samples=data.num_samples,
                  num_frames=data.num_frames, frame_size=data.frame_size)
  return fields


def host_batches(config: ml_collections.ConfigDict, *, split: str,
                 global_batch_size: int, seed: int,
                 manual_dir: Optional[str], data_dir: Optional[str],
                 fields: Sequence[str]) -> Callable[[int],
                                                    Iterator[dict]]:
  """make_batches(start_step) for loop.run_stage, resumable by skipping.

  The stream is a seeded shuffle repeated forever, so batch i is the same
  in every run; a resumed run skips the batches of the steps already done.

  By default every process reads the whole split, forms the same global
  batch and keeps its own rows of it, so the global batch of a step does not
  depend on the number of processes (a 2-process run trains exactly as a
  1-process one). With `config.data.per_process_files = True` each process
  instead reads only its part of the split (tfds.split_for_jax_process):
  the scalable choice for data sets too large to read on every host.

  Args:
    config: the experiment config (its `data` block).
    split: the TFDS split.
    global_batch_size: examples per step over all processes.
    seed: the shuffle seed.
    manual_dir: raw data folder, used when the data is not prepared yet.
    data_dir: the TFDS data dir.
    fields: the batch fields the step uses (others are dropped).

  Returns:
    A function start_step -> iterator of this process's numpy batches.
  """
  process_count = jax.process_count()
  process_index = jax.process_index()
  if global_batch_size % process_count:
    raise errors.UserFacingError(
        f"batch_size {global_batch_size} is not divisible by the "
        f"{process_count} processes")
  local_batch_size = global_batch_size // process_count
  per_process_files = config.data.get("per_process_files", False)

  def make_batches(start_step: int) -> Iterator[dict]:
    dataset = pipeline.make_dataset(
        config.data.name, split, global_batch_size=global_batch_size,
        data_dir=data_dir, builder_kwargs=data_kwargs(config), seed=seed,
        manual_dir=manual_dir,
        process_index=process_index if per_process_files else 0,
        process_count=process_count if per_process_files else 1)
    start = 0 if per_process_files else process_index * local_batch_size
    rows = slice(start, start + local_batch_size)
    dataset = dataset.map(lambda batch: {k: batch[k][rows] for k in fields})
    return dataset.skip(start_step).as_numpy_iterator()
  return make_batches


def split_clips(config: ml_collections.ConfigDict, split: str, *,
                manual_dir: Optional[str] = None,
                data_dir: Optional[str] = None,
                fields=("target", "digit", "speaker"),
                limit: Optional[int] = None) -> dict:
  """A whole AV-digits split in file order, as numpy arrays.

  Args:
    config: a config with an av_digits `data` block.
    split: the TFDS split (e.g. 'test', 'train[:100]').
    manual_dir: raw data folder, used when the data is not prepared yet.
    data_dir: the TFDS data dir.
    fields: the fields to keep.
    limit: keep at most this many examples.

  Returns:
    {field: array [num_examples, ...]}.
  """
  dataset = pipeline.whole_split(
      config.data.name, split, data_dir=data_dir, manual_dir=manual_dir,
      builder_kwargs=data_kwargs(config))
  if limit is not None:
    dataset = dataset.unbatch().take(limit).batch(64)
  parts = {field: [] for field in fields}
  for batch in dataset.as_numpy_iterator():
    for field in fields:
      parts[field].append(batch[field])
  return {field: np.concatenate(values) for field, values in parts.items()}
