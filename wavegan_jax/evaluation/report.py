"""W/eval/report.md: the evaluation's numbers, images and example wavs.

Written next to metrics.json by `evaluate.py`. Images are PNGs drawn with
matplotlib (Agg, no display needed), audio is 16-bit PCM wav (soundfile);
the report links them by relative path so the folder can be moved whole.
"""

import os
from typing import Optional, Sequence

import matplotlib
matplotlib.use("Agg")
# pylint: disable-next=g-import-not-at-top,wrong-import-position
import matplotlib.pyplot as plt
import numpy as np
import soundfile

from wavegan_jax.evaluation import instrument_pass
from wavegan_jax.evaluation import instruments
from wavegan_jax.evaluation import metrics as metrics_lib

NUM_SHOWN = 4  # Examples drawn and written as wav.


def _format(value) -> str:
  if value is None:
    return "n/a"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def _table(rows: Sequence[tuple[str, object, object]]) -> list[str]:
  lines = ["| metric | generated | real |", "|---|---|---|"]
  lines += [f"| {name} | {_format(generated)} | {_format(real)} |"
            for name, generated, real in rows]
  return lines


def log_spectrogram(audio: np.ndarray, n_fft: int = 256,
                    hop_length: int = 64) -> np.ndarray:
  """[freq, time] log magnitude (dB, floored 80 dB below the peak)."""
  audio = np.asarray(audio, np.float64)
  window = np.hanning(n_fft)
  padded = np.pad(audio, (n_fft // 2, n_fft // 2))
  starts = range(0, len(padded) - n_fft + 1, hop_length)
  frames = np.stack([padded[s:s + n_fft] * window for s in starts])
  decibels = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)).T + 1e-8)
  return np.maximum(decibels, decibels.max() - 80.0)


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """16-bit PCM wav of a [N] clip (clipped to [-1, 1])."""
  soundfile.write(path, np.clip(np.asarray(audio, np.float32), -1.0, 1.0),
                  sample_rate, subtype="PCM_16")


def spectrogram_grid(path: str, columns: dict, titles: Sequence[str],
                     sample_rate: int) -> None:
  """One row per example, one column per named set of clips."""
  names = list(columns)
  rows = len(titles)
  figure, axes = plt.subplots(rows, len(names), squeeze=False,
                              figsize=(3.2 * len(names), 2.2 * rows))
  for row, title in enumerate(titles):
    for column, name in enumerate(names):
      audio = columns[name][row]
      axis = axes[row, column]
      axis.imshow(log_spectrogram(audio), origin="lower", aspect="auto",
                  cmap="magma",
                  extent=(0, len(audio) / sample_rate, 0, sample_rate / 2))
      axis.set_title(f"{name}: {title}", fontsize=8)
      axis.tick_params(labelsize=6)
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  plt.close(figure)


def confusion_image(path: str, matrix: np.ndarray, title: str) -> None:
  figure, axis = plt.subplots(figsize=(4.5, 4))
  axis.imshow(matrix, cmap="Blues")
  for (row, column), count in np.ndenumerate(matrix):
    if count:
      colour = "white" if count > matrix.max() / 2 else "black"
      axis.text(column, row, str(count), ha="center", va="center",
                fontsize=7, color=colour)
  axis.set_xlabel("judged digit")
  axis.set_ylabel("digit shown in the video")
  axis.set_xticks(range(len(matrix)))
  axis.set_yticks(range(len(matrix)))
  axis.set_title(title, fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  plt.close(figure)


def class_share_image(path: str, counts: dict, title: str) -> None:
  """Bars of each named set's share of clips per judged class."""
  figure, axis = plt.subplots(figsize=(5.5, 3))
  classes = len(next(iter(counts.values())))
  width = 0.8 / len(counts)
  for i, (name, values) in enumerate(counts.items()):
    values = np.asarray(values, np.float64)
    axis.bar(np.arange(classes) + (i - (len(counts) - 1) / 2) * width,
             values / max(values.sum(), 1), width, label=name)
  axis.set_xticks(range(classes))
  axis.set_xlabel("judged digit")
  axis.set_ylabel("share of clips")
  axis.set_title(title, fontsize=9)
  axis.legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  plt.close(figure)


def _write_examples(output_dir: str, clips: dict, sample_rate: int,
                    count: int) -> list[str]:
  """Writes wavs/example{i}_{name}.wav; returns markdown lines linking them."""
  os.makedirs(os.path.join(output_dir, "wavs"), exist_ok=True)
  lines = []
  for index in range(count):
    links = []
    for name, audio in clips.items():
      relative = f"wavs/example{index}_{name}.wav"
      write_wav(os.path.join(output_dir, relative), audio[index], sample_rate)
      links.append(f"[{name}]({relative})")
    lines.append(f"- example {index}: " + ", ".join(links))
  return lines


def write_av_report(output_dir: str, results: dict, *, generated, real,
                    reference, digits, digit_predictions, target_ids,
                    sample_rate: int, num_shown: int = NUM_SHOWN) -> str:
  """Writes report.md (+ images, wavs) of an audio-visual evaluation.

  Returns:
    The path of report.md.
  """
  os.makedirs(output_dir, exist_ok=True)
  count = min(num_shown, len(generated))
  confusion = metrics_lib.confusion_matrix(digit_predictions, digits, 10)
  confusion_image(os.path.join(output_dir, "confusion_matrix.png"), confusion,
                  "digit judge on generated audio")
  titles = [_id_text(target_ids[i]) for i in range(count)]
  spectrogram_grid(os.path.join(output_dir, "spectrograms.png"),
                   {"generated": generated, "real": real}, titles,
                   sample_rate)
  example_lines = _write_examples(
      output_dir, {"generated": generated, "real": real,
                   "reference": reference}, sample_rate, count)
  r = results
  lines = [
      "# Evaluation", "",
      f"{r['num_examples']} examples of the `{r['split']}` split; the real "
      "column scores the paired real target recordings of the same "
      "examples.", "",
      *_table([
          ("digit accuracy", r["digit_accuracy"], r["real_digit_accuracy"]),
          ("speaker accuracy", r["speaker_accuracy"],
           r["real_speaker_accuracy"]),
          ("heard as the reference's digit (copying)",
           r["reference_digit_rate"], r["real_reference_digit_rate"]),
          ("sync error, median ms", r["sync_error_ms_median"],
           r["real_sync_error_ms_median"]),
          ("FAD vs real test (real: train vs test floor)", r["fad"],
           r["fad_real_floor"]),
          (f"inception score ({r['inception_splits']} splits)",
           r["inception_score"], r["real_inception_score"]),
          ("PESQ (narrow-band) vs target", r["pesq"], None),
          ("STOI vs target", r["stoi"], None),
          ("multi-resolution STFT distance vs target", r["stft_distance"],
           None),
          ("level where the target is silent, median dB below the clip's "
           "peak", r["silence_level_db"], None),
          ("share of those frames above "
           f"{instruments.AUDIBLE_IN_SILENCE_DB:.0f} dB",
           r["silence_audible_share"], None),
          *instrument_pass.report_rows(r),
      ]), "",
      f"Clips without a detected onset: {r['sync_undetected']}; clips PESQ "
      f"could not score: {r['pesq_failed']}; STOI: {r['stoi_failed']}.", "",
      *instrument_pass.report_note(r),
      "## Digit confusion (judge on generated audio)", "",
      "![confusion matrix](confusion_matrix.png)", "",
      "## Spectrograms: generated next to real", "",
      "![spectrograms](spectrograms.png)", "",
      "## Audio", "", *example_lines, ""]
  path = os.path.join(output_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def write_wavegan_report(output_dir: str, results: dict, *, generated, real,
                         sample_rate: int,
                         num_shown: int = NUM_SHOWN) -> str:
  """Writes report.md (+ spectrograms, wavs) of a WaveGAN evaluation.

  Returns:
    The path of report.md.
  """
  os.makedirs(output_dir, exist_ok=True)
  count = min(num_shown, len(generated), len(real))
  spectrogram_grid(os.path.join(output_dir, "spectrograms.png"),
                   {"generated": generated, "real": real},
                   [f"clip {i}" for i in range(count)], sample_rate)
  example_lines = _write_examples(
      output_dir, {"generated": generated, "real": real}, sample_rate, count)
  class_share_image(os.path.join(output_dir, "digits.png"),
                    {"generated": results["digit_counts"],
                     "real": results["real_digit_counts"]},
                    "digits the judge hears")
  r = results
  scale = r.get("latent_scale", 1.0)
  truncation = ([f"Latents scaled by {scale:g} (truncation).", ""]
                if scale != 1 else [])
  round_trip = ([
      f"The real clips through this SpecGAN's representation (normalised "
      f"spectrogram, clipped, Griffin-Lim back to audio) score IS "
      f"{r['real_round_trip_inception_score']:.3f} ± "
      f"{r['real_round_trip_inception_score_std']:.3f}: the most its "
      "generated clips could score.", ""]
                if "real_round_trip_inception_score" in r else [])
  lines = [
      "# Evaluation (unconditional WaveGAN)", "", *truncation,
      f"{r['num_examples']} generated clips; {r['num_real_examples']} real "
      f"clips of the `{r['split']}` split. Nearest-neighbour distances are "
      "mean Euclidean distances in the digit judge's embedding space, as "
      "in the WaveGAN paper's diversity figures.", "",
      *_table([
          (f"inception score ({r['inception_splits']} splits)",
           r["inception_score"], r["real_inception_score"]),
          ("inception score std", r["inception_score_std"],
           r["real_inception_score_std"]),
          (f"inception score of {r['inception_score_matched_examples']} "
           f"clips ({r['inception_splits']} splits)",
           r["inception_score_matched"], r["real_inception_score"]),
          ("NN distance to the train set", r["nn_train_distance"],
           r["real_nn_train_distance"]),
          ("NN distance within the set", r["nn_self_distance"],
           r["real_nn_self_distance"]),
          ("judge's entropy per clip, H(y|x) (nats)",
           r["conditional_entropy"], r["real_conditional_entropy"]),
          ("entropy of the judged digits, H(y) (nats)",
           r["marginal_entropy"], r["real_marginal_entropy"]),
          ("share of 32 ms frames below -50 dBFS (silence)",
           r["silent_fraction"], r["real_silent_fraction"]),
          *instrument_pass.report_rows(r),
      ]), "", *instrument_pass.report_note(r),
      "log IS of one split = H(y) - H(y|x): a high H(y|x) means clips the "
      "judge is unsure of, a low H(y) digits the generator drops or "
      "favours.", "", *round_trip,
      "## Judged digits", "",
      "![judged digits](digits.png)", "",
      "## Spectrograms: generated next to real", "",
      "![spectrograms](spectrograms.png)", "",
      "## Audio", "", *example_lines, ""]
  path = os.path.join(output_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def _id_text(clip_id: Optional[object]) -> str:
  if isinstance(clip_id, bytes):
    return clip_id.decode()
  return str(clip_id)
