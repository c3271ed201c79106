"""`launch/evaluate_robustness.py`: a trained AV run on videos unlike its own.

The robustness set (wavegan_jax/data/robustness.py) holds real video files
of digits rendered in ways AV-digits' training never shows (printed fonts,
other scales, positions, stroke widths, inverted and coloured frames, other
frame sizes and rates). Each clip goes through what `launch/generate.py`
does with a user's video: `generate.prepare_video` (retimed to the model's
frame rate, grayscale, redrawn or resized) and `prepare_reference`, then the
generator, clip k with the noise of seed + k (as `generate.py --manifest
=<set>/manifest.csv --seed=<seed>`). The project's judges
(`evaluate.Judges`) then score, per rendering kind and over all clips:

  digit_accuracy     the digit judge hears the digit shown;
  speaker_accuracy   the speaker judge hears the reference's speaker;
  sync_error_ms_median, sync_undetected
                     |detected onset of the generated speech - time the
                     digit appears| (`metrics.sync_error_ms`), and how many
                     clips had no onset;
and the same for the real targets (`real_` keys: the judges' ceiling and
the onset detector's floor on these recordings).

Written to W/eval/robustness/ (or `output_dir`): metrics.json (overall keys,
`kinds` with each kind's, the set's description), report.md, kinds.png (one
clip of each kind as rendered and as the model sees it) and examples/ (the
generated and real audio of each kind's first clip). The set is made in
<output_dir>/set unless `set_dir` names one already made.
"""

import json
import os
import pathlib
from typing import Optional, Sequence

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw

from wavegan_jax.data import media
from wavegan_jax.data import robustness as robustness_set
from wavegan_jax.evaluation import evaluate
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import metrics as metrics_lib
from wavegan_jax.evaluation import report

OUTPUT_DIR = "robustness"  # Under W/eval.
SET_DIR = "set"  # Under the output dir, when no set_dir is given.
EvaluationError = evaluate.EvaluationError
TILE = 96  # Pixels of each picture in kinds.png.


def default_output_dir(workdir: str) -> str:
  return os.path.join(workdir, evaluate.EVAL_DIR, OUTPUT_DIR)


def ensure_set(set_dir: str, manual_dir: Optional[str],
               clips_per_kind: Optional[int], kinds: Optional[Sequence[str]],
               seed: Optional[int]) -> tuple[dict, list]:
  """The set in `set_dir`, made first when absent or unlike what is asked.

  clips_per_kind / kinds / seed None take what a set already there holds
  (the defaults when making one: 30 clips of every kind, seed 0).

  Raises:
    EvaluationError: bad arguments, no raw data to make the set from, or a
      broken set.
  """
  try:
    kinds = None if kinds is None else robustness_set.check_kinds(kinds)
    info_path = pathlib.Path(set_dir) / robustness_set.SET_FILE
    if info_path.is_file():
      info, rows = robustness_set.read_set(set_dir)
      asked = {"clips_per_kind": clips_per_kind, "seed": seed,
               "kinds": None if kinds is None else list(kinds)}
      if all(value is None or info.get(key) == value
             for key, value in asked.items()):
        return info, rows
      logging.warning("%s holds another set (%s); making the one asked for",
                      set_dir, info)
    if manual_dir is None:
      raise EvaluationError(
          f"no robustness set at {set_dir} and no raw data to make it from: "
          "pass --manual_dir (or set $WAVEGAN_MANUAL_DIR)")
    robustness_set.make_set(
        manual_dir, set_dir, seed=seed or 0, kinds=kinds,
        clips_per_kind=(robustness_set.DEFAULT_CLIPS_PER_KIND
                        if clips_per_kind is None else clips_per_kind))
    return robustness_set.read_set(set_dir)
  except robustness_set.RobustnessSetError as error:
    raise EvaluationError(str(error)) from error


def _decode(rows, clip: generate_lib.ClipSpec):
  """(videos, references, targets) of the rows, as the generate path makes
  them; EvaluationError naming the file that fails."""
  videos, references, targets = [], [], []
  for row in rows:
    try:
      videos.append(generate_lib.prepare_video(row.video, clip))
      references.append(generate_lib.prepare_reference(row.reference, clip))
      target = media.load_audio(row.target, clip.sample_rate,
                                allow_silent=True)[:, 0]
      targets.append(generate_lib.fit_length(target, clip.num_samples))
    except (media.MediaError, FileNotFoundError) as error:
      raise EvaluationError(str(error)) from error
  return np.stack(videos), np.stack(references), np.stack(targets)


def score(digits, speakers, onset_samples, judged, sample_rate: int,
          audio) -> dict:
  """Digit / speaker accuracy and sync of one group of clips."""
  errors, median = metrics_lib.sync_error_ms(audio, onset_samples, 1,
                                             sample_rate)
  return {
      "digit_accuracy": metrics_lib.accuracy(judged["digit_probabilities"],
                                             digits),
      "speaker_accuracy": metrics_lib.accuracy(
          judged["speaker_probabilities"], speakers),
      "sync_error_ms_median": metrics_lib.safe_float(median),
      "sync_undetected": int(np.sum(~np.isfinite(errors))),
  }


def _scores(selection, digits, speakers, onsets, judged, judged_real,
            generated, real, rate) -> dict:
  pick = lambda tree: {k: v[selection] for k, v in tree.items()}
  results = {"num_examples": int(np.sum(selection))}
  results.update(score(digits[selection], speakers[selection],
                       onsets[selection], pick(judged), rate,
                       generated[selection]))
  results.update({f"real_{key}": value for key, value in score(
      digits[selection], speakers[selection], onsets[selection],
      pick(judged_real), rate, real[selection]).items()})
  return results


def _kinds_image(path: str, rows, videos, kinds: Sequence[str],
                 clip: generate_lib.ClipSpec) -> None:
  """For each kind's first clip: a rendered frame (top) and the same moment
  as the model sees it (bottom), under the kind's name."""
  canvas = Image.new("RGB", (TILE * len(kinds), 2 * TILE + 14), "white")
  draw = ImageDraw.Draw(canvas)
  for column, kind in enumerate(kinds):
    index = next(i for i, row in enumerate(rows) if row.kind == kind)
    row, video = rows[index], videos[index]
    # The model's frame that differs most from its first (empty) one.
    change = np.abs(video.astype(int) - video[:1].astype(int)).sum(
        axis=(1, 2, 3))
    frame = int(np.argmax(change))
    rendered = media.load_video(row.video, channels=3)
    # The source frame shown at that moment (as media's retiming picks).
    source_fps = robustness_set.KINDS[kind].fps if (
        kind in robustness_set.KINDS) else clip.fps
    source = rendered[min(len(rendered) - 1,
                          int(frame / clip.fps * source_fps + 1e-6))]
    canvas.paste(Image.fromarray(source).resize(
        (TILE, TILE), Image.Resampling.NEAREST), (column * TILE, 14))
    canvas.paste(Image.fromarray(video[frame, ..., 0]).convert("RGB").resize(
        (TILE, TILE), Image.Resampling.NEAREST), (column * TILE, TILE + 14))
    draw.text((column * TILE + 2, 1), kind, fill="black")
  canvas.save(path)


def _format(value) -> str:
  if value is None:
    return "n/a"
  return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_report(output_dir: str, results: dict) -> None:
  """report.md: a table of the kinds and the overall row."""
  columns = (("digit_accuracy", "digit acc."),
             ("real_digit_accuracy", "real digit acc."),
             ("speaker_accuracy", "speaker acc."),
             ("real_speaker_accuracy", "real speaker acc."),
             ("sync_error_ms_median", "sync ms (median)"),
             ("real_sync_error_ms_median", "real sync ms"),
             ("sync_undetected", "no onset"))
  lines = [
      "# Robustness: videos rendered unlike AV-digits' training frames", "",
      f"Workdir `{results['workdir']}`, judges `{results['judges_workdir']}`,"
      f" set `{results['set_dir']}` ({results['num_examples']} clips; "
      f"{results['set']['audio']}). Each clip goes through the generate "
      "path (`prepare_video`, `prepare_reference`); the real columns score "
      "the clip's real target recording.", "",
      "| kind | what | clips | " + " | ".join(t for _, t in columns) + " |",
      "|---|---|---|" + "---|" * len(columns)]
  for kind, values in results["kinds"].items():
    what = (robustness_set.KINDS[kind].description
            if kind in robustness_set.KINDS else "")
    lines.append(f"| {kind} | {what} | {values['num_examples']} | " +
                 " | ".join(_format(values[k]) for k, _ in columns) + " |")
  lines.append(f"| **all** | | {results['num_examples']} | " + " | ".join(
      _format(results[k]) for k, _ in columns) + " |")
  lowest = _format(results["min_kind_digit_accuracy"])
  lines += ["", f"Lowest digit accuracy: {lowest} ({results['min_kind']}).",
            "",
            "![one clip of each kind: rendered (top), as the model sees it "
            "(bottom)](kinds.png)", "",
            "Audio of each kind's first clip: `examples/<kind>_generated.wav`"
            " and `examples/<kind>_real.wav`.", ""]
  with open(os.path.join(output_dir, "report.md"), "w") as file:
    file.write("\n".join(lines))


def evaluate_robustness(workdir: str, *,
                        judges_workdir: Optional[str] = None,
                        set_dir: Optional[str] = None,
                        output_dir: Optional[str] = None,
                        manual_dir: Optional[str] = None,
                        clips_per_kind: Optional[int] = None,
                        kinds: Optional[Sequence[str]] = None,
                        set_seed: Optional[int] = None,
                        batch_size: int = 32,
                        seed: int = 0) -> dict:
  """Generates for every clip of the robustness set and scores it.

  Args:
    workdir: an audio-visual run directory with a generator export (only
      read).
    judges_workdir: the judges' run directory (default W/../judges).
    set_dir: a robustness set (made there when absent; default
      <output_dir>/set).
    output_dir: where results go (default W/eval/robustness).
    manual_dir: raw data to make the set from (default $WAVEGAN_MANUAL_DIR).
    clips_per_kind: clips of each kind when making the set (None: what a
      set already there holds, else robustness.DEFAULT_CLIPS_PER_KIND).
    kinds: kinds to make (None: all, or what a set there holds).
    set_seed: seed of the set's random choices when making it (None:
      what a set already there holds, else 0).
    batch_size: generation and judging batch size.
    seed: clip k is generated with the noise of seed + k.

  Returns:
    The metrics written to metrics.json.

  Raises:
    EvaluationError: bad input (the message names the path or value).
  """
  config, judges_workdir, manual_dir = evaluate.run_to_evaluate(
      workdir, judges_workdir, manual_dir)
  if "acoustic" not in config:
    raise EvaluationError(f"{workdir}/config.json is not an audio-visual "
                          "run: the robustness set is for video-to-speech "
                          "generators")
  if isinstance(batch_size, bool) or not isinstance(
      batch_size, int) or batch_size < 1:
    raise EvaluationError(f"batch_size must be an integer >= 1, got "
                          f"{batch_size!r}")
  output_dir = output_dir or default_output_dir(workdir)
  set_dir = set_dir or os.path.join(output_dir, SET_DIR)
  judges = evaluate.Judges(judges_workdir)
  try:
    generator = generate_lib.AVGenerator(workdir, config)
  except generate_lib.GenerateError as error:
    raise EvaluationError(str(error)) from error
  info, rows = ensure_set(set_dir, manual_dir, clips_per_kind, kinds,
                          set_seed)
  clip = generator.clip
  videos, references, real = _decode(rows, clip)
  rate = clip.sample_rate
  seeds = seed + np.arange(len(rows), dtype=np.int32)
  generated = evaluate.batched(generator.generate,
                               [videos, references, seeds], batch_size)
  judged = judges(generated, rate, batch_size)
  judged_real = judges(real, rate, batch_size)

  speakers_known = list(robustness_set.av_digits.SPEAKERS)
  unknown = sorted({r.speaker for r in rows} - set(speakers_known))
  if unknown:
    raise EvaluationError(f"{set_dir}: unknown speaker(s) {unknown}")
  digits = np.array([r.digit for r in rows])
  speakers = np.array([speakers_known.index(r.speaker) for r in rows])
  onsets = np.array([r.onset_seconds * rate for r in rows])
  kind_names = list(dict.fromkeys(r.kind for r in rows))
  of_kind = np.array([r.kind for r in rows])
  args = (digits, speakers, onsets, judged, judged_real, generated, real,
          rate)
  results = _scores(np.ones(len(rows), bool), *args)
  per_kind = {kind: _scores(of_kind == kind, *args) for kind in kind_names}
  worst = min(per_kind, key=lambda k: per_kind[k]["digit_accuracy"])
  results.update(
      min_kind_digit_accuracy=per_kind[worst]["digit_accuracy"],
      min_kind=worst, kinds=per_kind, set=info,
      set_dir=os.path.abspath(set_dir),
      workdir=os.path.abspath(workdir),
      judges_workdir=os.path.abspath(judges_workdir), seed=int(seed))

  os.makedirs(os.path.join(output_dir, "examples"), exist_ok=True)
  for kind in kind_names:
    first = int(np.flatnonzero(of_kind == kind)[0])
    for name, audio in (("generated", generated), ("real", real)):
      report.write_wav(os.path.join(output_dir, "examples",
                                    f"{kind}_{name}.wav"),
                       audio[first], rate)
  _kinds_image(os.path.join(output_dir, "kinds.png"), rows, videos,
               kind_names, clip)
  write_report(output_dir, results)
  with open(os.path.join(output_dir, evaluate.METRICS_FILE), "w") as file:
    json.dump(results, file, indent=1)
  return results
