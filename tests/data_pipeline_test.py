"""Tests for wavegan_jax/data/pipeline.py: batches, sharding, global arrays."""

import jax
import numpy as np
import pytest

from wavegan_jax.data import pipeline


def _ids(dataset):
  return [i for batch in dataset.as_numpy_iterator()
          for i in batch["target_id"]]


def test_av_digits_batches(av_digits_data_dir):
  dataset = pipeline.make_dataset(
      "av_digits", "test", global_batch_size=16,
      data_dir=str(av_digits_data_dir), process_index=0, process_count=1)
  batch = next(dataset.as_numpy_iterator())
  assert batch["target"].shape == (16, 8192)
  assert batch["reference"].shape == (16, 8192)
  assert batch["target"].dtype == np.float32
  assert batch["video"].shape == (16, 32, 32, 32, 1)
  assert batch["video"].dtype == np.uint8
  for key in ("digit", "speaker", "onset_frame", "image_id"):
    assert batch[key].shape == (16,) and batch[key].dtype == np.int32
  assert np.abs(batch["target"]).max() <= 1.0
  # float = int16 / 32768, so every value is a multiple of 2**-15.
  np.testing.assert_array_equal(batch["target"] * 32768,
                                np.round(batch["target"] * 32768))


def test_two_processes_cover_each_example_once(av_digits_data_dir):
  parts = [
      _ids(pipeline.make_dataset(
          "av_digits", "test", global_batch_size=8,
          data_dir=str(av_digits_data_dir), shuffle=False, repeat=False,
          drop_remainder=False, process_index=index, process_count=2))
      for index in (0, 1)]
  assert len(parts[0]) == len(parts[1]) == 150
  assert not set(parts[0]) & set(parts[1])
  assert len(set(parts[0]) | set(parts[1])) == 300
  assert pipeline.num_examples("av_digits", "test",
                               str(av_digits_data_dir)) == 300


def test_shuffle_is_seeded(av_digits_data_dir):
  def first_ids(seed):
    dataset = pipeline.make_dataset(
        "av_digits", "test", global_batch_size=8, seed=seed,
        data_dir=str(av_digits_data_dir), process_index=0, process_count=1)
    return list(next(dataset.as_numpy_iterator())["target_id"])
  assert first_ids(3) == first_ids(3)
  assert first_ids(3) != first_ids(4)


def test_batch_must_divide_over_processes(av_digits_data_dir):
  with pytest.raises(ValueError, match="global_batch_size 9 is not divisible "
                     "by process_count 2"):
    pipeline.make_dataset("av_digits", "test", global_batch_size=9,
                          data_dir=str(av_digits_data_dir), process_index=0,
                          process_count=2)


def test_global_batches_are_sharded_over_data(av_digits_data_dir):
  mesh = jax.make_mesh((1,), ("data",))
  dataset = pipeline.make_dataset(
      "av_digits", "test", global_batch_size=4,
      data_dir=str(av_digits_data_dir), process_index=0, process_count=1)
  batch = next(pipeline.global_batches(dataset, mesh))
  assert "target_id" not in batch and "reference_id" not in batch
  assert batch["target"].shape == (4, 8192)
  assert batch["video"].shape == (4, 32, 32, 32, 1)
  assert batch["digit"].dtype == np.int32
  for value in batch.values():
    assert isinstance(value, jax.Array)
    assert value.sharding == jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec("data"))


def test_unknown_config_field():
  with pytest.raises(ValueError,
                     match=r"unknown config fields \['slice_len'\]"):
    pipeline.get_builder("av_digits", builder_kwargs={"slice_len": 5})
