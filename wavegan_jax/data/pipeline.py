"""The tf.data input pipeline: TFDS splits to sharded global jax.Arrays.

`make_dataset` gives each process its own part of a split as batches of
numpy-ready tensors (audio as float32 in [-1, 1], video uint8, labels int32);
`global_batches` assembles those per-process batches into global arrays
sharded over a mesh's data axis.
"""

import hashlib
import json
import logging
import os
import pathlib
import stat
from typing import Any, Iterator, Mapping

import jax
import tensorflow as tf
import tensorflow_datasets as tfds

from wavegan_jax import errors
from wavegan_jax.data import av_digits
from wavegan_jax.data import common



class _DropDeprecatedDtypeWarning(logging.Filter):
  """Drops TFDS's own 'FeatureConnector.dtype is deprecated' warning.

  TFDS 4.9 logs it each time a builder's features are read (dozens of lines
  per evaluation) from its own code, so nothing here can change the cause.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return "FeatureConnector.dtype` is deprecated" not in record.getMessage()


logging.getLogger("absl").addFilter(_DropDeprecatedDtypeWarning())

# Builders are registered by importing the package; see __init__.py.
AUDIO_FIELDS = ("target", "reference")
INT16_SCALE = 32768.0
_EXPECTED_MANUAL = {
    "av_digits": av_digits.EXPECTED_LAYOUT,
    "av_folder": "a folder of videos",
    "audio_folder": "a folder of audio files",
}


def get_builder(name: str, data_dir: str | None = None,
                builder_kwargs: Mapping[str, Any] | None = None):
  """The TFDS builder `name` with its config.

  Args:
    name: 'av_digits', 'av_folder', 'audio_folder' (or any TFDS name).
    data_dir: where prepared data lives (TFDS's default when None).
    builder_kwargs: optional 'config' (a BuilderConfig or a config name) and
      config fields to override (e.g. {'num_frames': 16}); a changed config
      gets its own name, so it is prepared into its own folder.

  Returns:
    A tfds.core.DatasetBuilder.
  """
  fields = dict(builder_kwargs or {})
  config = fields.pop("config", None)
  builder_cls = tfds.builder_cls(name)
  configs = {c.name: c for c in getattr(builder_cls, "BUILDER_CONFIGS", [])}
  if isinstance(config, str):
    if config not in configs:
      raise ValueError(f"{name} has no config {config!r}; it has "
                       f"{sorted(configs)}")
    config = configs[config]
  if fields:
    base = config or next(iter(configs.values()))
    config = common.config_from_fields(base, **fields)
  return tfds.builder(name, data_dir=data_dir, config=config)


# Builders whose source is the user's folder: the prepared data records which
# folder (and which files) it was built from, and is not reused for another.
FOLDER_BUILDERS = ("audio_folder", "av_folder")
SOURCE_FILE = "source.json"


def folder_fingerprint(folder: str | os.PathLike) -> dict[str, Any]:
  """The folder's absolute path and a SHA-256 of its files' names, sizes
  and modification times (every regular file under it, links followed).

  Returns:
    {'folder': str, 'files': int, 'fingerprint': hex str}.
  """
  folder = pathlib.Path(folder).resolve()
  entries = []
  for path in sorted(folder.rglob("*")):
    try:
      info = path.stat()
    except OSError:  # A dangling link or a link loop: only its name counts.
      entries.append([path.relative_to(folder).as_posix(), None, None])
      continue
    if stat.S_ISREG(info.st_mode):
      entries.append([path.relative_to(folder).as_posix(), info.st_size,
                      info.st_mtime_ns])
  digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
  return {"folder": str(folder), "files": len(entries),
          "fingerprint": digest}


def _source_path(builder) -> pathlib.Path:
  return pathlib.Path(builder.data_dir) / SOURCE_FILE


def _record_source(builder, source: dict[str, Any]) -> None:
  """Writes source.json beside the prepared data (atomically)."""
  path = _source_path(builder)
  temporary = path.with_name(f"{SOURCE_FILE}.{os.getpid()}.tmp")
  temporary.write_text(json.dumps(source, indent=1))
  os.replace(temporary, path)


def check_source(builder, manual_dir: str) -> None:
  """Raises unless prepared folder data was built from `manual_dir` as it is.

  Data prepared before sources were recorded cannot be checked: a warning
  says so.

  Raises:
    errors.SourceChangedError: naming both folders (or, for the same
      folder, the file counts then and now) and what to do.
  """
  path = _source_path(builder)
  current = folder_fingerprint(manual_dir)
  if not path.is_file():
    logging.getLogger("absl").warning(
        "%s records no source folder (prepared before sources were "
        "recorded): cannot check that it was built from %s", builder.data_dir,
        current["folder"])
    return
  stored = json.loads(path.read_text())
  if stored.get("fingerprint") == current["fingerprint"]:
    return
  remedy = (f"give another --data_dir, or delete {builder.data_dir} to "
            "prepare it again")
  if stored.get("folder") != current["folder"]:
    raise errors.SourceChangedError(
        f"{builder.data_dir}: prepared from {stored.get('folder')} "
        f"({stored.get('files')} files), not from {current['folder']} "
        f"({current['files']} files); {remedy}")
  raise errors.SourceChangedError(
      f"{builder.data_dir}: prepared from {current['folder']} when it held "
      f"other files ({stored.get('files')} then, {current['files']} now, "
      f"or changed sizes or times); {remedy}")


def download_config(manual_dir: str | None = None):
  """The TFDS download config used throughout: offline-safe, no GCS probe."""
  return tfds.download.DownloadConfig(manual_dir=manual_dir,
                                      try_download_gcs=False)


def prepare_dataset(name: str, data_dir: str | None = None,
                    manual_dir: str | None = None,
                    builder_kwargs: Mapping[str, Any] | None = None):
  """Prepares a dataset into data_dir unless it is there already.

  Args:
    name: the TFDS builder name.
    data_dir: where to write (TFDS's default when None).
    manual_dir: the raw data folder (FSDD/MNIST copies for av_digits, the
      user's folder for the folder builders); av_digits downloads without it.
    builder_kwargs: config choice and overrides, as in `get_builder`.

  Returns:
    (builder, already_prepared).

  Raises:
    FileNotFoundError: manual_dir is missing or lacks the expected files.
    errors.SourceChangedError: a folder builder's data is prepared from
      another folder, or from other files of this one (check_source).
  """
  builder = get_builder(name, data_dir, builder_kwargs)
  from_folder = (name in FOLDER_BUILDERS and manual_dir is not None and
                 pathlib.Path(manual_dir).is_dir())
  if builder.is_prepared():
    if from_folder:
      check_source(builder, manual_dir)
    return builder, True
  if manual_dir is not None:
    if not pathlib.Path(manual_dir).is_dir():
      raise FileNotFoundError(
          f"manual dir {manual_dir} does not exist; expected "
          f"{_EXPECTED_MANUAL.get(name, 'the source files')}")
    if name == "av_digits":
      av_digits.check_manual_dir(pathlib.Path(manual_dir))
  elif name != "av_digits":
    raise FileNotFoundError(
        f"{name}/{builder.builder_config.name} is not prepared in "
        f"{builder.data_dir}; give the source folder as manual_dir")
  source = folder_fingerprint(manual_dir) if from_folder else None
  builder.download_and_prepare(download_config=download_config(manual_dir))
  if source is not None and jax.process_index() == 0:
    _record_source(builder, source)
  return builder, False


def num_examples(name: str, split: str, data_dir: str | None = None,
                 builder_kwargs: Mapping[str, Any] | None = None) -> int:
  """The number of examples in a prepared split (e.g. 'train', 'test[:10]')."""
  builder = get_builder(name, data_dir, builder_kwargs)
  return builder.info.splits[split].num_examples


def _to_model_inputs(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """int16 audio -> float32 in [-1, 1]; integer labels -> int32."""
  converted = {}
  for key, value in example.items():
    if value.dtype == tf.int16:
      value = tf.cast(value, tf.float32) / INT16_SCALE
    elif value.dtype == tf.int64:
      value = tf.cast(value, tf.int32)
    converted[key] = value
  return converted


def make_dataset(name: str, split: str, *, global_batch_size: int,
                 data_dir: str | None = None,
                 builder_kwargs: Mapping[str, Any] | None = None,
                 shuffle: bool = True, seed: int = 0, repeat: bool = True,
                 drop_remainder: bool = True,
                 process_index: int | None = None,
                 process_count: int | None = None,
                 manual_dir: str | None = None,
                 shuffle_buffer_size: int = 10_000) -> tf.data.Dataset:
  """This process's batches of a split.

  Each process reads its own even part of the split (the parts cover every
  example exactly once), shuffles, repeats and batches it.

  Args:
    name: the TFDS builder name.
    split: a split (or TFDS slice, e.g. 'train[:90%]').
    global_batch_size: examples per step over all processes.
    data_dir: where the data is prepared.
    builder_kwargs: config choice and overrides, as in `get_builder`.
    shuffle: shuffle files and examples.
    seed: seed of the shuffles.
    repeat: repeat forever.
    drop_remainder: drop a last partial batch (keeps shapes static).
    process_index: this process (default jax.process_index()).
    process_count: number of processes (default jax.process_count()).
    manual_dir: prepare the data from this folder first when not prepared.
    shuffle_buffer_size: examples in the shuffle buffer.

  Returns:
    A tf.data.Dataset of dicts: 'target'/'reference' float32 [B, N] and
    'video' uint8 [B, T, H, W, C] for the av sets, 'audio' float32 [B, N, C]
    for audio_folder, int32 labels, string ids; B = global_batch_size /
    process_count.
  """
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  if global_batch_size % process_count:
    raise ValueError(f"global_batch_size {global_batch_size} is not divisible "
                     f"by process_count {process_count}")
  builder, _ = prepare_dataset(name, data_dir, manual_dir, builder_kwargs)
  process_split = tfds.split_for_jax_process(
      split, process_index=process_index, process_count=process_count)
  dataset = builder.as_dataset(
      split=process_split, shuffle_files=shuffle,
      read_config=tfds.ReadConfig(shuffle_seed=seed))
  dataset = dataset.map(_to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE)
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer_size, seed=seed,
                              reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  dataset = dataset.batch(global_batch_size // process_count,
                          drop_remainder=drop_remainder,
                          num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


def whole_split(name: str, split: str, *, builder_kwargs: Mapping[str, Any],
                data_dir: str | None = None, manual_dir: str | None = None,
                batch_size: int = 64) -> tf.data.Dataset:
  """Every example of a split once, in file order, in batches of batch_size
  (the last one partial), read by this process alone: for evaluation and
  statistics, not training."""
  return make_dataset(
      name, split, global_batch_size=batch_size, data_dir=data_dir,
      builder_kwargs=builder_kwargs, shuffle=False, repeat=False,
      drop_remainder=False, process_index=0, process_count=1,
      manual_dir=manual_dir)


def global_batches(dataset: tf.data.Dataset, mesh: jax.sharding.Mesh,
                   axis: str = "data") -> Iterator[dict[str, jax.Array]]:
  """Per-process batches -> global jax.Arrays sharded over `axis`.

  The leading (batch) dimension is split over the mesh's `axis`; string
  fields are dropped.

  Args:
    dataset: this process's batches (from `make_dataset`).
    mesh: the device mesh.
    axis: the mesh axis the batch is sharded over.

  Yields:
    dicts of global jax.Arrays with batch = per-process batch * processes.
  """
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec(axis))
  for batch in dataset.as_numpy_iterator():
    yield {
        key: jax.make_array_from_process_local_data(sharding, value)
        for key, value in batch.items()
        if value.dtype.kind not in ("O", "S", "U")
    }

