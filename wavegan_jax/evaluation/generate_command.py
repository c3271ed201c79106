"""The generate command (launch/generate.py): modes, batching, exit status.

Audio-visual workdir:
  one clip:  video + reference -> output wav (+ optional muxed video);
  manifest:  a CSV of (video, reference, output[, output_video]) rows,
             generated `batch_size` at a time; row k (0-based) uses seed + k,
             so it sounds the same as a single run with --seed=seed+k.
WaveGAN workdir:
  samples:   `num_samples` clips from z ~ U[-1, 1] (PRNGKey(seed)) as
             <output_dir>/sample_<i>.wav;
  preview:   the same `PREVIEW_CLIPS` latents (PRNGKey(seed)) rendered by
             every checkpoint into <output_dir>/preview_<step>.wav, the clips
             separated by half a second of silence; steps already rendered
             are skipped.

Inputs are checked before the model is loaded. A problem with a file prints
one line `error: <file>: <what is wrong>` to stderr and returns 2; in a
manifest a bad row is reported and skipped, the others are generated, and the
status is 2 if any row failed.
"""

import pathlib
import sys
from typing import Optional

import numpy as np

from wavegan_jax import errors
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import generate_io

GenerateError = generate_lib.GenerateError
PREVIEW_CLIPS = 8
# GenerateError, MediaError, a damaged export, a mismatched one...; OSError:
# a path that is missing, a folder, unwritable or on a full disk.
USER_ERRORS = (errors.UserFacingError, OSError)
describe_error = errors.describe


def _print_error(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)


def run(workdir: str, *, video: Optional[str] = None,
        reference: Optional[str] = None, output: Optional[str] = None,
        output_video: Optional[str] = None, manifest: Optional[str] = None,
        batch_size: int = 8, seed: int = 0,
        num_samples: Optional[int] = None, output_dir: Optional[str] = None,
        preview: bool = False, preview_clips: int = PREVIEW_CLIPS) -> int:
  """Runs the generate command; see the module docstring for the modes.

  Args:
    workdir: a run directory written by launch/train.py.
    video: (audio-visual) the input video file, GIF or frame folder.
    reference: (audio-visual) the reference recording.
    output: (audio-visual) the wav file to write.
    output_video: (audio-visual, optional) a video with the audio muxed in.
    manifest: (audio-visual) a CSV of many (video, reference, output).
    batch_size: examples per generator call.
    seed: noise / latent seed.
    num_samples: (WaveGAN) how many clips to write to output_dir.
    output_dir: (WaveGAN) where clips or previews go (previews default to
      <workdir>/wavegan/preview).
    preview: (WaveGAN) render every checkpoint's preview.
    preview_clips: latents per preview.

  Returns:
    The exit status: 0, or 2 when an input was bad (the reason printed).
  """
  try:
    kind, config = generate_lib.read_workdir_config(workdir)
    if batch_size < 1:
      raise GenerateError("--batch_size", f"must be at least 1, got "
                          f"{batch_size}")
    if kind == generate_lib.AV_KIND:
      if num_samples is not None or preview:
        raise GenerateError(workdir, "an audio-visual workdir takes --video, "
                            "--reference and --output (or --manifest), not "
                            "--num_samples or --preview")
      if manifest is not None:
        if video or reference or output or output_video:
          raise GenerateError(manifest, "give either --manifest or --video/"
                              "--reference/--output, not both")
        return _run_manifest(workdir, config, manifest, batch_size, seed)
      if not (video and reference and output):
        raise GenerateError(workdir, "an audio-visual workdir needs --video, "
                            "--reference and --output (or --manifest)")
      return _run_one(workdir, config, video, reference, output,
                      output_video, seed)
    if video or reference or output or output_video or manifest:
      raise GenerateError(workdir, "an unconditional WaveGAN workdir takes "
                          "--num_samples and --output_dir, or --preview")
    if preview:
      return _run_preview(workdir, config, output_dir, seed, preview_clips)
    if num_samples is None or not output_dir:
      raise GenerateError(workdir, "an unconditional WaveGAN workdir needs "
                          "--num_samples and --output_dir (or --preview)")
    if num_samples < 1:
      raise GenerateError("--num_samples", f"must be at least 1, got "
                          f"{num_samples}")
    return _run_samples(workdir, config, num_samples, output_dir, seed,
                        batch_size)
  except USER_ERRORS as error:
    _print_error(describe_error(error))
    return 2


def _check_outputs(output, output_video, inputs):
  """Output types, and no output that is an input (`inputs`: name -> path)."""
  generate_io.check_output_path(output, generate_io.AUDIO_OUTPUT_EXTENSIONS)
  generate_io.check_not_an_input(output, inputs)
  if output_video:
    generate_io.check_output_path(output_video,
                                  generate_io.VIDEO_OUTPUT_EXTENSIONS)
    generate_io.check_not_an_input(output_video,
                                   {**inputs, "--output": output})


def _write(clip, waveform, output, video_path, output_video):
  generate_io.write_audio(output, waveform, clip.sample_rate)
  print(f"wrote {output} ({waveform.shape[0]} samples at "
        f"{clip.sample_rate} Hz)")
  if output_video:
    frames = generate_io.video_for_output(video_path, clip)
    generate_io.write_video_with_audio(output_video, frames, clip.fps,
                                       waveform, clip.sample_rate)
    print(f"wrote {output_video} ({clip.seconds:.3f} s at "
          f"{float(clip.fps):g} fps)")


def _run_one(workdir, config, video, reference, output, output_video, seed):
  generate_lib.check_export(workdir, generate_lib.AV_KIND)
  _check_outputs(output, output_video,
                 {"--video": video, "--reference": reference})
  clip = generate_lib.ClipSpec.from_config(config)
  # The reference first: a long video's log line comes only when both
  # inputs are good, so a bad input prints just its one error line.
  reference_audio = generate_lib.prepare_reference(reference, clip)
  frames = generate_lib.prepare_video(video, clip)
  model = generate_lib.AVGenerator(workdir, config)
  waveform = model.generate(frames[None], reference_audio[None], [seed])[0]
  _write(clip, waveform, output, video, output_video)
  return 0


def _run_manifest(workdir, config, manifest, batch_size, seed):
  rows, problems = generate_io.read_manifest(manifest)
  for row, problem in problems:
    _print_error(f"{manifest} row {row}: {problem}")
  generate_lib.check_export(workdir, generate_lib.AV_KIND)
  if not rows:
    raise GenerateError(manifest, f"all {len(problems)} rows are incomplete")
  model = generate_lib.AVGenerator(workdir, config)
  clip = model.clip
  failed = len(problems)
  pending = []

  def row_failed(row, error):
    # Any failure of a row (a bad input, an output that cannot be written,
    # an encoder error) is that row's: the others are still generated.
    nonlocal failed
    message = (describe_error(error) if isinstance(error, USER_ERRORS) else
               f"{type(error).__name__}: {error}")
    _print_error(f"{manifest} row {row.row}: {message}")
    failed += 1

  def flush():
    if not pending:
      return
    size = min(batch_size, len(rows))
    videos = generate_lib.fit_length(np.stack([p[1] for p in pending]), size)
    references = generate_lib.fit_length(
        np.stack([p[2] for p in pending]), size)
    seeds = [seed + p[0].index for p in pending]
    seeds += [seed] * (size - len(seeds))
    waveforms = model.generate(videos, references, seeds)
    for (row, _, _), waveform in zip(pending, waveforms):
      try:
        _write(clip, waveform, row.output, row.video, row.output_video)
      except Exception as error:  # pylint: disable=broad-except
        row_failed(row, error)
    pending.clear()

  for row in rows:
    try:
      _check_outputs(row.output, row.output_video,
                     {"video": row.video, "reference": row.reference,
                      "--manifest": manifest})
      pending.append((row, generate_lib.prepare_video(row.video, clip),
                      generate_lib.prepare_reference(row.reference, clip)))
    except Exception as error:  # pylint: disable=broad-except
      row_failed(row, error)
    if len(pending) == batch_size:
      flush()
  flush()
  total = len(rows) + len(problems)
  if failed:
    _print_error(f"{manifest}: {failed} of {total} rows failed; the other "
                 f"{total - failed} were generated")
    return 2
  return 0


def _run_samples(workdir, config, num_samples, output_dir, seed,
                 batch_size):
  model = generate_lib.WaveGANGenerator(workdir, config)
  waveforms = model.generate(model.latents(num_samples, seed), batch_size)
  width = max(4, len(str(num_samples - 1)))
  for index, waveform in enumerate(waveforms):
    generate_io.write_audio(
        pathlib.Path(output_dir) / f"sample_{index:0{width}d}.wav",
        waveform, model.sample_rate)
  print(f"wrote {num_samples} clips of {model.slice_len} samples at "
        f"{model.sample_rate} Hz to {output_dir}")
  return 0


def _run_preview(workdir, config, output_dir, seed, preview_clips):
  model = generate_lib.WaveGANGenerator(workdir, config, load_export=False)
  steps = model.checkpoint_steps()
  if not steps:
    raise GenerateError(
        pathlib.Path(workdir) / "wavegan" / "checkpoints",
        "no checkpoints to preview (train first: launch/train.py)")
  output_dir = pathlib.Path(output_dir or
                            pathlib.Path(workdir) / "wavegan" / "preview")
  latents = model.latents(preview_clips, seed)
  rendered, skipped = 0, 0
  for step in steps:
    path = output_dir / f"preview_{step}.wav"
    if path.exists():
      skipped += 1
      continue
    model.load_checkpoint(step)
    # Written under another name first: an interrupted render is redone.
    partial = path.with_name(f".{path.stem}.partial.wav")
    generate_io.write_audio(partial, model.preview(latents),
                            model.sample_rate)
    partial.replace(path)
    rendered += 1
  print(f"previews in {output_dir}: {rendered} rendered, {skipped} already "
        "there")
  return 0
