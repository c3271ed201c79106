"""`launch/evaluate.py`: scores a trained workdir with the judges.

Two kinds of workdir (told apart by W/config.json, as the trainer does):

* Audio-visual (an `acoustic` block): the generator export generates audio
  for (a seeded subset of) an AV-digits split, batched under jit; the judges
  (`experiments/judges.py`) score it next to the real targets of the same
  examples. metrics.json holds digit / speaker accuracy, the onset sync
  error, FAD (and its real-train vs real-test floor), inception scores,
  PESQ, STOI and the multi-resolution STFT distance (see `evaluate_av`).
* Unconditional WaveGAN (a `wavegan` block): the inception score of N
  generated clips next to the real test clips' (and of as many generated
  clips as real ones, in as many splits: `inception_score_matched`), and
  the WaveGAN paper's nearest-neighbour figures in judge-embedding space
  (`evaluate_wavegan`). A latent scale below 1 draws the latents nearer
  0 (truncation). For a SpecGAN run, the real clips are also scored after
  the generator's spectrogram round trip (normalise, clip, Griffin-Lim):
  the ceiling of what that representation can score.

Both also carry the field's instruments (`instrument_pass.py`: DNSMOS,
pYIN voicing, spectral flatness, PocketSphinx, MCD for AV, tonal lines for
WaveGAN), each beside the real clips' figure; `instruments=False` skips
them.

The judges hear 8 kHz audio of their config's clip length (8192 samples):
audio at another rate is resampled (scipy's polyphase filter) and then
cropped or zero-padded at the end to that length.

Results go to W/eval/metrics.json and W/eval/report.md (`report.py`);
with a latent scale s other than 1, to W/eval_latent_scale_s/.
"""

import functools
import json
import math
import os
import tempfile
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.signal

from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax.data import batches
from wavegan_jax.data import pipeline
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import instrument_pass
from wavegan_jax.evaluation import instruments as instruments_lib
from wavegan_jax.evaluation import metrics as metrics_lib
from wavegan_jax.evaluation import report
from wavegan_jax.models import wavegan as wavegan_model
from wavegan_jax.training import checkpointing

EVAL_DIR = "eval"
# The stage (workdir folder) of the judges' export.
JUDGES_STAGE = "judges"
METRICS_FILE = "metrics.json"
DEFAULT_WAVEGAN_EXAMPLES = 1000


EvaluationError = errors.EvaluationError


def eval_dir(workdir: str, latent_scale: float = 1.0) -> str:
  """Where an evaluation's metrics.json and report go."""
  if latent_scale == 1:
    return os.path.join(workdir, EVAL_DIR)
  return os.path.join(workdir, f"{EVAL_DIR}_latent_scale_{latent_scale:g}")


def _check_writable(output_dir: str) -> None:
  """EvaluationError now, not after the work, if results cannot be written
  in `output_dir` (under a file, read-only, a full disk)."""
  try:
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=output_dir):
      pass
  except OSError as error:
    raise EvaluationError(
        f"{output_dir}: the results cannot be written there "
        f"({error.strerror or error})") from None


def read_config(workdir: str, what: str = "workdir"
                ) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to <workdir>/config.json."""
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise EvaluationError(f"{what} {workdir} has no config.json: not a "
                          "trained run directory")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except ValueError as error:
    raise EvaluationError(f"{path} is not valid JSON ({error})") from error


def run_to_evaluate(workdir: str, judges_workdir: Optional[str],
                    manual_dir: Optional[str]):
  """(config, judges_workdir, manual_dir) of a run to evaluate, checked.

  judges_workdir defaults to W/../judges, manual_dir to
  $WAVEGAN_MANUAL_DIR.

  Raises:
    EvaluationError: a workdir or manual dir that does not exist, or a
      workdir without a readable config.json.
  """
  if not os.path.isdir(workdir):
    raise EvaluationError(f"workdir {workdir} does not exist")
  config = read_config(workdir)
  if judges_workdir is None:
    judges_workdir = os.path.join(
        os.path.dirname(os.path.abspath(workdir)), "judges")
  manual_dir = manual_dir or os.environ.get("WAVEGAN_MANUAL_DIR")
  if manual_dir is not None and not os.path.isdir(manual_dir):
    raise EvaluationError(f"manual dir {manual_dir} does not exist")
  return config, judges_workdir, manual_dir


def _require_export(workdir: str, stage: str, hint: str) -> str:
  path = checkpointing.export_path(workdir, stage)
  if not os.path.isdir(path):
    raise EvaluationError(f"no trained {stage} export at {path}; {hint}")
  return path


def fit_to(audio: np.ndarray, sample_rate: int, target_rate: int,
           num_samples: int) -> np.ndarray:
  """[B, N] audio resampled to target_rate, cropped / padded to num_samples."""
  audio = np.asarray(audio, np.float32)
  if sample_rate != target_rate:
    divisor = math.gcd(sample_rate, target_rate)
    audio = scipy.signal.resample_poly(
        audio, target_rate // divisor, sample_rate // divisor,
        axis=-1).astype(np.float32)
  if audio.shape[1] >= num_samples:
    return audio[:, :num_samples]
  return np.pad(audio, ((0, 0), (0, num_samples - audio.shape[1])))


def batched(fn, arrays: list, batch_size: int) -> list:
  """fn over the rows of arrays, in equal padded chunks (one compile)."""
  count = len(arrays[0])
  size = min(batch_size, count)
  results = []
  for start in range(0, count, size):
    chunk = [a[start:start + size] for a in arrays]
    used = len(chunk[0])
    chunk = [np.concatenate([c, np.zeros((size - used,) + c.shape[1:],
                                         c.dtype)]) for c in chunk]
    results.append(jax.tree.map(lambda x, n=used: np.asarray(x)[:n],
                                fn(*chunk)))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *results)


class Judges:
  """The trained digit / speaker judges of a judges workdir."""

  def __init__(self, judges_workdir: str):
    path = _require_export(
        judges_workdir, JUDGES_STAGE,
        "train the judges first: python launch/train.py "
        f"--config=experiments/judges.py --workdir={judges_workdir}")
    config = read_config(judges_workdir, "judges workdir")
    self.model = inference.judge_model(config)
    self.sample_rate = config.data.sample_rate
    self.num_samples = config.data.num_samples
    expected = jax.eval_shape(lambda: self.model.init(
        jax.random.PRNGKey(0),
        jnp.zeros((1, self.num_samples), jnp.float32))["params"])
    self.params = checkpointing.load_params(path, expected, name="judges")
    self._apply = jax.jit(
        lambda params, audio: self.model.apply({"params": params}, audio))

  def __call__(self, audio, sample_rate: int, batch_size: int = 64) -> dict:
    """Judges' outputs for [B, N] audio at `sample_rate`.

    Returns:
      {'digit_probabilities' [B, 10], 'speaker_probabilities' [B, 6],
       'embedding' [B, E]} as numpy arrays.
    """
    audio = fit_to(audio, sample_rate, self.sample_rate, self.num_samples)

    def run(chunk):
      outputs = self._apply(self.params, chunk)
      return {"digit_probabilities": jax.nn.softmax(outputs["digit_logits"]),
              "speaker_probabilities": jax.nn.softmax(
                  outputs["speaker_logits"]),
              "embedding": outputs["embedding"]}
    return batched(run, [audio], batch_size)


def check_split(config: ml_collections.ConfigDict, split: str,
                manual_dir: Optional[str], data_dir: Optional[str],
                builder_kwargs: dict) -> None:
  """Raises EvaluationError unless `split` names a split of the data."""
  try:
    builder, _ = pipeline.prepare_dataset(config.data.name, data_dir,
                                          manual_dir, builder_kwargs)
  except FileNotFoundError as error:
    raise EvaluationError(str(error)) from error
  splits = sorted(builder.info.splits.keys())
  if split.split("[")[0] not in splits:
    raise EvaluationError(f"unknown split {split!r}; {config.data.name} has "
                          f"{splits}")


def _subset(count: int, limit: Optional[int], seed: int) -> np.ndarray:
  """Sorted indices of a seeded random subset (all when limit is None)."""
  if limit is None or limit >= count:
    return np.arange(count)
  if limit < 2:
    raise EvaluationError(f"num_examples must be >= 2, got {limit}")
  return np.sort(np.random.default_rng(seed).permutation(count)[:limit])


# --- Audio-visual workdirs ---------------------------------------------------


def _loaded(load):
  """load() with generate.py's file errors as EvaluationError."""
  try:
    return load()
  except generate_lib.GenerateError as error:
    raise EvaluationError(str(error)) from error


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def floor_partners(clips: dict, keep: np.ndarray) -> np.ndarray:
  """For each kept example, another real take of its digit and speaker.

  The MCD floor: the next example of the whole split (in order, wrapping
  round) with the same digit and speaker and another target recording.

  Args:
    clips: the whole split's 'target', 'digit', 'speaker', 'target_id'.
    keep: indices of the evaluated examples.

  Returns:
    [len(keep), N] targets; a row of zeros where no other take exists.
  """
  count = len(clips["target"])
  partners = np.zeros((len(keep),) + clips["target"].shape[1:],
                      clips["target"].dtype)
  for row, index in enumerate(keep):
    for offset in range(1, count):
      other = (index + offset) % count
      if (clips["digit"][other] == clips["digit"][index]
          and clips["speaker"][other] == clips["speaker"][index]
          and clips["target_id"][other] != clips["target_id"][index]):
        partners[row] = clips["target"][other]
        break
  return partners


def evaluate_av(config, workdir, judges: Judges, *, split: str,
                num_examples: Optional[int], manual_dir, data_dir,
                batch_size: int, seed: int, output_dir: str,
                instruments: bool = True,
                instrument_clips: Optional[int] = (
                    instrument_pass.DEFAULT_MAX_CLIPS)) -> dict:
  """Generates for an AV-digits split and scores it; writes output_dir.

  instruments: also run `instrument_pass.measure_av` on (at most
  instrument_clips of) the examples.
  """
  generator = _loaded(lambda: generate_lib.AVGenerator(workdir, config))
  check_split(config, split, manual_dir, data_dir,
              batches.data_kwargs(config))
  fields = ("video", "target", "reference", "digit", "speaker", "onset_frame",
            "target_id", "reference_id")
  clips = batches.split_clips(config, split, manual_dir=manual_dir,
                              data_dir=data_dir, fields=fields)
  keep = _subset(len(clips["target"]), num_examples, seed)
  partners = floor_partners(clips, keep) if instruments else None
  clips = {key: value[keep] for key, value in clips.items()}
  count = len(keep)
  # The floor of FAD: as many real train takes as examples, drawn at random.
  train = batches.split_clips(config, "train", manual_dir=manual_dir,
                              data_dir=data_dir, fields=("target",))
  train_audio = train["target"][_subset(len(train["target"]), count,
                                        seed + 1)]

  # Example i's noise comes from PRNGKey(seed * count + i).
  seeds = seed * count + np.arange(count, dtype=np.int32)
  generated = batched(generator.generate,
                      [clips["video"], clips["reference"], seeds], batch_size)
  rate = config.data.sample_rate
  real = clips["target"]
  judged = judges(generated, rate, batch_size)
  judged_real = judges(real, rate, batch_size)
  judged_train = judges(train_audio, rate, batch_size)

  splits = min(10, count)
  samples_per_frame = config.data.num_samples // config.data.num_frames
  sync, sync_median = metrics_lib.sync_error_ms(
      generated, clips["onset_frame"], samples_per_frame, rate)
  _, real_sync_median = metrics_lib.sync_error_ms(
      real, clips["onset_frame"], samples_per_frame, rate)
  pesq = metrics_lib.pesq_nb(real, generated, rate)
  stoi = metrics_lib.stoi(real, generated, rate)
  inception = metrics_lib.inception_score(judged["digit_probabilities"],
                                          splits)
  real_inception = metrics_lib.inception_score(
      judged_real["digit_probabilities"], splits)
  stft = metrics_lib.multi_resolution_stft_distance(generated, real)
  digit_predictions = judged["digit_probabilities"].argmax(-1)
  # The reference is another digit (an FSDD stem '<digit>_<speaker>_<take>'):
  # a generator that copied it rather than following the video would be
  # heard saying the reference's digit.
  reference_digits = np.array([int(_text(i).split("_")[0])
                               for i in clips["reference_id"]])
  safe = metrics_lib.safe_float
  results = {
      "num_examples": count,
      "split": split,
      "digit_accuracy": metrics_lib.accuracy(digit_predictions,
                                             clips["digit"]),
      "speaker_accuracy": metrics_lib.accuracy(
          judged["speaker_probabilities"], clips["speaker"]),
      "real_digit_accuracy": metrics_lib.accuracy(
          judged_real["digit_probabilities"], clips["digit"]),
      "real_speaker_accuracy": metrics_lib.accuracy(
          judged_real["speaker_probabilities"], clips["speaker"]),
      "reference_digit_rate": metrics_lib.accuracy(digit_predictions,
                                                   reference_digits),
      "real_reference_digit_rate": metrics_lib.accuracy(
          judged_real["digit_probabilities"], reference_digits),
      "sync_error_ms_median": safe(sync_median),
      "sync_undetected": int(np.sum(~np.isfinite(sync))),
      "real_sync_error_ms_median": safe(real_sync_median),
      "fad": metrics_lib.frechet_distance(judged["embedding"],
                                          judged_real["embedding"]),
      "fad_real_floor": metrics_lib.frechet_distance(
          judged_train["embedding"], judged_real["embedding"]),
      "inception_score": inception[0],
      "inception_score_std": inception[1],
      "real_inception_score": real_inception[0],
      "real_inception_score_std": real_inception[1],
      "inception_splits": splits,
      "pesq": safe(pesq.mean),
      "pesq_failed": pesq.num_failed,
      "stoi": safe(stoi.mean),
      "stoi_failed": stoi.num_failed,
      "stft_distance": stft["total"],
      **_json_floats(instruments_lib.level_where_target_is_silent(
          generated, real, samples_per_frame)),
  }
  if instruments:
    results.update(_json_floats(instrument_pass.measure_av(
        generated, real, partners, clips["digit"], rate,
        max_clips=instrument_clips, seed=seed)))
  report.write_av_report(
      output_dir, results, generated=generated, real=real,
      reference=clips["reference"], digits=clips["digit"],
      digit_predictions=digit_predictions,
      target_ids=clips["target_id"], sample_rate=rate)
  return results


# --- Unconditional WaveGAN workdirs -------------------------------------------


def _json_floats(results: dict) -> dict:
  """NaN / inf floats as None (JSON has neither)."""
  return {key: metrics_lib.safe_float(value) if isinstance(value, float)
          else value for key, value in results.items()}


def _mono(audio: np.ndarray) -> np.ndarray:
  """[B, N, C] -> [B, N] (channel mean)."""
  audio = np.asarray(audio, np.float32)
  return audio.mean(axis=-1) if audio.ndim == 3 else audio


def _audio_folder_split(config, split, manual_dir, data_dir) -> np.ndarray:
  dataset = pipeline.whole_split(
      config.data.name, split, data_dir=data_dir, manual_dir=manual_dir,
      builder_kwargs=dict(config.data.builder_kwargs))
  return np.concatenate([_mono(batch["audio"])
                         for batch in dataset.as_numpy_iterator()])


def evaluate_wavegan(config, workdir, judges: Judges, *, split: str,
                     num_examples: Optional[int], manual_dir, data_dir,
                     batch_size: int, seed: int, output_dir: str,
                     latent_scale: float = 1.0, instruments: bool = True,
                     instrument_clips: Optional[int] = (
                         instrument_pass.DEFAULT_MAX_CLIPS)) -> dict:
  """IS and nearest-neighbour figures of generated vs real clips.

  latent_scale multiplies the latents (truncation below 1). instruments:
  also run `instrument_pass.measure_wavegan` (on at most instrument_clips
  clips of each set; tonal lines on all).
  """
  generator = _loaded(lambda: generate_lib.WaveGANGenerator(workdir, config))
  folder_dir = (None if manual_dir is None else
                os.path.join(manual_dir, config.data.folder))
  check_split(config, split, folder_dir, data_dir,
              dict(config.data.builder_kwargs))
  count = DEFAULT_WAVEGAN_EXAMPLES if num_examples is None else num_examples
  if count < 2:
    raise EvaluationError(f"num_examples must be >= 2, got {count}")
  generated = _mono(generator.generate(
      generator.latents(count, seed) * np.float32(latent_scale), batch_size))
  real = _audio_folder_split(config, split, folder_dir, data_dir)
  train = _audio_folder_split(config, "train", folder_dir, data_dir)
  rate = config.data.builder_kwargs.sample_rate
  judged = judges(generated, rate, batch_size)
  judged_real = judges(real, rate, batch_size)
  judged_train = judges(train, rate, batch_size)
  splits = min(10, count, len(real))
  inception = metrics_lib.inception_score(judged["digit_probabilities"],
                                          splits)
  real_inception = metrics_lib.inception_score(
      judged_real["digit_probabilities"], splits)
  # A split's IS grows with its clip count (its marginal is better
  # estimated), so the real set's few clips per split understate it against
  # the generated set's many: this one scores as many generated clips as
  # real ones in as many splits.
  matched_count = min(count, len(real))
  matched_inception = metrics_lib.inception_score(
      judged["digit_probabilities"][:matched_count], splits)
  entropies = metrics_lib.inception_entropies(judged["digit_probabilities"])
  real_entropies = metrics_lib.inception_entropies(
      judged_real["digit_probabilities"])
  nearest = metrics_lib.nearest_neighbour_distances
  results = {
      "num_examples": count,
      "num_real_examples": len(real),
      "split": split,
      "latent_scale": float(latent_scale),
      "inception_score": inception[0],
      "inception_score_std": inception[1],
      "real_inception_score": real_inception[0],
      "real_inception_score_std": real_inception[1],
      "inception_splits": splits,
      "inception_score_matched": matched_inception[0],
      "inception_score_matched_examples": matched_count,
      "conditional_entropy": entropies["conditional_entropy"],
      "marginal_entropy": entropies["marginal_entropy"],
      "digit_counts": entropies["class_counts"],
      "real_conditional_entropy": real_entropies["conditional_entropy"],
      "real_marginal_entropy": real_entropies["marginal_entropy"],
      "real_digit_counts": real_entropies["class_counts"],
      "silent_fraction": metrics_lib.silent_fraction(generated, rate),
      "real_silent_fraction": metrics_lib.silent_fraction(real, rate),
      "nn_train_distance": float(np.mean(nearest(
          judged["embedding"], judged_train["embedding"]))),
      "nn_self_distance": float(np.mean(nearest(
          judged["embedding"], judged["embedding"], exclude_self=True))),
      "real_nn_train_distance": float(np.mean(nearest(
          judged_real["embedding"], judged_train["embedding"]))),
      "real_nn_self_distance": float(np.mean(nearest(
          judged_real["embedding"], judged_real["embedding"],
          exclude_self=True))),
  }
  if generator.representation == "spectrogram":
    # The real clips through the representation: the IS a SpecGAN could
    # reach with perfect spectrograms.
    round_trip = _mono(generator.round_trip(real[..., None], batch_size))
    round_trip_inception = metrics_lib.inception_score(
        judges(round_trip, rate, batch_size)["digit_probabilities"], splits)
    results.update(real_round_trip_inception_score=round_trip_inception[0],
                   real_round_trip_inception_score_std=round_trip_inception[1])
  if instruments:
    # The last layers' strides set the checkerboard's lines.
    _, _, layers = wavegan_model.generator_layout(
        config.data.builder_kwargs.slice_len, 1, 1)
    strides = [stride for _, stride in layers][::-1][:3]
    results.update(_json_floats(instrument_pass.measure_wavegan(
        generated, real, judged["digit_probabilities"].argmax(-1),
        judged_real["digit_probabilities"].argmax(-1), rate, strides,
        max_clips=instrument_clips, seed=seed)))
  report.write_wavegan_report(output_dir, results,
                              generated=generated, real=real,
                              sample_rate=rate)
  return results


def evaluate(workdir: str, *, split: str = "test",
             judges_workdir: Optional[str] = None,
             num_examples: Optional[int] = None,
             manual_dir: Optional[str] = None,
             data_dir: Optional[str] = None, batch_size: int = 32,
             seed: int = 0, latent_scale: float = 1.0,
             instruments: bool = True,
             instrument_clips: Optional[int] = (
                 instrument_pass.DEFAULT_MAX_CLIPS)) -> dict:
  """Evaluates a trained workdir; writes W/eval/metrics.json and report.md.

  Args:
    workdir: an audio-visual or unconditional WaveGAN run directory.
    split: the data split to generate for / compare with.
    judges_workdir: the judges' run directory (default: W/../judges).
    num_examples: AV: a seeded random subset of the split (default all);
      WaveGAN: clips to generate (default 1000).
    manual_dir: raw data folder, used when the data is not prepared yet.
    data_dir: the TFDS data dir.
    batch_size: generation and judging batch size.
    seed: seed of the noise / latents and of the subsets.
    latent_scale: WaveGAN: the latents times this, > 0 (below 1:
      truncation); the results then go to `eval_dir(workdir, latent_scale)`.
    instruments: also measure with DNSMOS, pYIN, PocketSphinx, MCD (AV)
      and tonal lines (WaveGAN), each beside the real clips' figure.
    instrument_clips: at most this many clips of each set for the
      instruments (None: all; tonal lines always read all).

  Returns:
    The metrics written to metrics.json.

  Raises:
    EvaluationError: bad input (the message names the path or value).
  """
  config, judges_workdir, manual_dir = run_to_evaluate(
      workdir, judges_workdir, manual_dir)
  if not (isinstance(latent_scale, (int, float))
          and math.isfinite(latent_scale) and latent_scale > 0):
    raise EvaluationError(f"latent_scale must be a finite number > 0, got "
                          f"{latent_scale!r}")
  if num_examples is not None and (isinstance(num_examples, bool) or
                                   not isinstance(num_examples, int) or
                                   num_examples < 2):
    raise EvaluationError(f"num_examples must be >= 2, got {num_examples!r}")
  output_dir = eval_dir(workdir, latent_scale)
  if instrument_clips is not None and instrument_clips < 1:
    raise EvaluationError(f"instrument_clips must be >= 1, got "
                          f"{instrument_clips}")
  _check_writable(output_dir)
  if "acoustic" in config:
    if latent_scale != 1:
      raise EvaluationError(f"latent_scale={latent_scale:g} is for "
                            f"unconditional WaveGAN runs; {workdir} is an "
                            "audio-visual run")
    evaluate_fn = evaluate_av
  elif "wavegan" in config:
    evaluate_fn = functools.partial(evaluate_wavegan,
                                    latent_scale=latent_scale)
  else:
    raise EvaluationError(f"{workdir}/config.json has no acoustic or wavegan "
                          "block: not a generator run to evaluate")
  judges = Judges(judges_workdir)
  results = evaluate_fn(config, workdir, judges, split=split,
                        num_examples=num_examples, manual_dir=manual_dir,
                        data_dir=data_dir, batch_size=batch_size, seed=seed,
                        output_dir=output_dir, instruments=instruments,
                        instrument_clips=instrument_clips)
  results["judges_workdir"] = os.path.abspath(judges_workdir)
  with open(os.path.join(output_dir, METRICS_FILE), "w") as f:
    json.dump(results, f, indent=1)
  return results
