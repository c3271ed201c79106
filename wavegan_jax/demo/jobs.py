"""The demo's work queue: one generator, loaded once, one request at a time.

`DemoEngine` reads the workdir, loads its generator and runs it once on
zeros so that the one compilation (the input shape is fixed: one AV clip,
or MAX_CLIPS WaveGAN latents) happens before the first request. Requests
become `Job`s in a queue that a single worker thread runs in order; the page
polls a job's state. Every file lives under one temporary folder: a job's
uploads are deleted when it finishes, its results when it falls out of the
last KEPT_JOBS, and the folder itself on `close`.

Errors read as launch/generate.py prints them: `error: <file>: <what>`, with
an upload named by the file name it was sent under.
"""

import collections
import dataclasses
import itertools
import math
import pathlib
import queue
import shutil
import tempfile
import threading
import time
from typing import Any, Callable

from absl import logging
import numpy as np

from wavegan_jax.demo import examples as examples_lib
from wavegan_jax.evaluation import generate as generate_lib
from wavegan_jax.evaluation import generate_command
from wavegan_jax.evaluation import generate_io
from wavegan_jax.evaluation import report

MAX_QUEUED = 8  # Requests waiting at once; more are refused, not crashed on.
KEPT_JOBS = 16  # Finished jobs whose result files stay downloadable.
MAX_CLIPS = 16  # WaveGAN clips per request (the one compiled batch size).
EXAMPLE_SCALE = 4  # Examples' 32x32 frames are shown 4x larger.


class RequestError(Exception):
  """A request the page can fix; str() is what the page shows."""


def error_line(error: Exception,
               shown_names: dict[str, str] | None = None) -> str:
  """`error: <file>: <what>` as launch/generate.py prints it.

  Args:
    error: one of generate_command.USER_ERRORS.
    shown_names: saved upload path -> the file name it was sent under, so
      that the line names the user's file, not the temporary copy.

  Returns:
    The one-line message.
  """
  message = generate_command.describe_error(error)
  for path, name in (shown_names or {}).items():
    message = message.replace(path, name)
  return f"error: {message}"


@dataclasses.dataclass
class Job:
  """One request and what became of it.

  Attributes:
    id: a short decimal id, unique for the server's life.
    inputs: for AV, 'video'/'reference' paths or 'example' (an index), and
      'seed'; for WaveGAN, 'seed', 'scale' and 'num_clips'.
    folder: the job's folder (uploads/ and the result files).
    status: 'queued', 'running', 'done' or 'error'.
    stage: what it is doing now, for the progress line.
    error: the one-line message when status is 'error'.
    results: name -> file name in `folder` ('audio', 'video',
      'spectrogram', 'clip_<i>').
    shown_names: saved upload path -> the name it was sent under.
  """
  id: str
  inputs: dict[str, Any]
  folder: pathlib.Path
  status: str = "queued"
  stage: str = "waiting"
  error: str | None = None
  results: dict[str, str] = dataclasses.field(default_factory=dict)
  shown_names: dict[str, str] = dataclasses.field(default_factory=dict)
  submitted: float = dataclasses.field(default_factory=time.monotonic)
  started: float | None = None
  finished: float | None = None
  done: threading.Event = dataclasses.field(default_factory=threading.Event)

  @property
  def upload_dir(self) -> pathlib.Path:
    return self.folder / "uploads"

  def seconds(self) -> float | None:
    """Run time of a finished job (queueing excluded)."""
    if self.started is None or self.finished is None:
      return None
    return self.finished - self.started


class DemoEngine:
  """A workdir's generator behind a queue; see the module docstring.

  Attributes:
    workdir: the run directory.
    kind: generate_lib.AV_KIND, WAVEGAN_KIND, or None when the config could
      not be read.
    load_error: the one-line error while the generator cannot be loaded
      (it is tried again with each request), else None.
    examples: AV-digits test examples to pick from.
    root: the temporary folder holding every file of the server.
  """

  def __init__(self, workdir: str, *,
               examples: list[examples_lib.Example] | None = None,
               temp_dir: str | None = None,
               report: Callable[[str], None] = logging.info):
    """Loads and compiles the generator and starts the worker.

    Args:
      workdir: an audio-visual or WaveGAN run directory.
      examples: test examples offered by the page (AV only).
      temp_dir: where to make the temporary folder (default: the system's).
      report: called with a line when the model is loaded and when a job
        finishes (launch/demo.py prints them).
    """
    self.workdir = workdir
    self._report = report
    self.kind = None
    self.config = None
    self.load_error = None
    self.examples = list(examples or [])
    self.root = pathlib.Path(tempfile.mkdtemp(prefix="wavegan-demo-",
                                              dir=temp_dir))
    self._model = None
    self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
    self._jobs_lock = threading.Lock()
    self._queue: queue.Queue[Job | None] = queue.Queue()
    self._ids = itertools.count(1)
    self._load()
    self._write_example_files()
    self._worker = threading.Thread(target=self._work, name="demo-worker",
                                    daemon=True)
    self._worker.start()

  # -------------------------------------------------------------------------
  # The model.

  def _load(self) -> None:
    """Reads the workdir, loads and compiles its generator, or notes why not."""
    try:
      self.kind, self.config = generate_lib.read_workdir_config(self.workdir)
      start = time.monotonic()
      if self.kind == generate_lib.AV_KIND:
        model = generate_lib.AVGenerator(self.workdir, self.config)
        clip = model.clip
        model.generate(
            np.zeros((1, clip.num_frames, clip.frame_size, clip.frame_size,
                      1), np.uint8), np.zeros((1, clip.num_samples)), [0])
      else:
        model = generate_lib.WaveGANGenerator(self.workdir, self.config)
        model.generate(np.zeros((MAX_CLIPS, model.latent_dim), np.float32),
                       MAX_CLIPS)
      self._model, self.load_error = model, None
      self._report(f"Loaded and compiled the {self.kind} generator of "
                   f"{self.workdir} in {time.monotonic() - start:.1f} s")
    except generate_command.USER_ERRORS as error:
      self.load_error = error_line(error)
      logging.warning("%s", self.load_error)

  @property
  def clip(self) -> generate_lib.ClipSpec | None:
    if self.kind != generate_lib.AV_KIND or self.config is None:
      return None
    return generate_lib.ClipSpec.from_config(self.config)

  def _write_example_files(self) -> None:
    """Each example's reference and original video, for the page to play."""
    clip = self.clip
    if clip is None:
      self.examples = []
      return
    for index, example in enumerate(self.examples):
      folder = self.example_dir(index)
      folder.mkdir(parents=True)
      generate_io.write_audio(folder / "reference.wav", example.reference,
                              clip.sample_rate)
      generate_io.write_video_with_audio(
          folder / "original.mp4", _enlarged(example.frames), clip.fps,
          example.target, clip.sample_rate)

  def example_dir(self, index: int) -> pathlib.Path:
    return self.root / "examples" / str(index)

  # -------------------------------------------------------------------------
  # Requests.

  def new_job(self, inputs: dict[str, Any]) -> Job:
    """A job with its own folder, not yet queued (uploads go in first)."""
    job_id = str(next(self._ids))
    job = Job(id=job_id, inputs=dict(inputs), folder=self.root / "jobs" /
              job_id)
    job.upload_dir.mkdir(parents=True)
    return job

  def submit(self, job: Job) -> Job:
    """Queues a job.

    Raises:
      RequestError: MAX_QUEUED jobs are waiting already (the job's folder is
        removed).
    """
    with self._jobs_lock:
      waiting = sum(j.status == "queued" for j in self._jobs.values())
      if waiting >= MAX_QUEUED:
        shutil.rmtree(job.folder, ignore_errors=True)
        raise RequestError(f"error: the queue is full ({waiting} requests "
                           "waiting); try again when one has finished")
      self._jobs[job.id] = job
      self._forget_old_jobs()
    self._queue.put(job)
    return job

  def _forget_old_jobs(self) -> None:
    finished = [j for j in self._jobs.values() if j.done.is_set()]
    for job in finished[:max(0, len(finished) - KEPT_JOBS)]:
      del self._jobs[job.id]
      shutil.rmtree(job.folder, ignore_errors=True)

  def job(self, job_id: str) -> Job | None:
    with self._jobs_lock:
      return self._jobs.get(job_id)

  def position(self, job: Job) -> int:
    """How many queued or running jobs are ahead of `job`."""
    with self._jobs_lock:
      ahead = 0
      for other in self._jobs.values():
        if other is job:
          return ahead
        ahead += other.status in ("queued", "running")
    return 0

  def wait(self, job: Job, timeout: float | None = None) -> bool:
    """Blocks until the job is done or errored; False on timeout."""
    return job.done.wait(timeout)

  def close(self) -> None:
    """Stops the worker after the current job and deletes every file."""
    self._queue.put(None)
    self._worker.join(timeout=60)
    shutil.rmtree(self.root, ignore_errors=True)

  # -------------------------------------------------------------------------
  # The worker.

  def _work(self) -> None:
    while True:
      job = self._queue.get()
      if job is None:
        return
      job.status, job.started = "running", time.monotonic()
      status, error_text = "error", "error: internal: the request stopped"
      try:
        if self._model is None:
          job.stage = "loading the generator"
          self._load()
          if self._model is None:
            raise RequestError(self.load_error)
        if self.kind == generate_lib.AV_KIND:
          self._run_av(job)
        else:
          self._run_wavegan(job)
        status, error_text = "done", None
      except RequestError as error:
        error_text = str(error)
      except generate_command.USER_ERRORS as error:
        error_text = error_line(error, job.shown_names)
      except Exception as error:  # pylint: disable=broad-except
        # A bug must not stop the server: the page gets one line, the log
        # the traceback.
        logging.exception("Job %s failed.", job.id)
        error_text = f"error: internal: {type(error).__name__}: {error}"
      finally:
        shutil.rmtree(job.upload_dir, ignore_errors=True)
        job.finished = time.monotonic()
        job.error, job.stage = error_text, status
        # Last: a page that reads 'done' finds the results and the time.
        job.status = status
        job.done.set()
        self._report(f"request {job.id}: {job.error or 'done'} in "
                     f"{job.seconds():.2f} s")

  def _run_av(self, job: Job) -> None:
    model, clip, inputs = self._model, self._model.clip, job.inputs
    if "example" in inputs:
      example = self.examples[inputs["example"]]
      reference, frames = example.reference, example.frames
      shown_frames, target = _enlarged(frames), example.target
    else:
      # The reference first, as launch/generate.py does.
      job.stage = "decoding the reference"
      reference = generate_lib.prepare_reference(inputs["reference"], clip)
      job.stage = "decoding the video"
      frames = generate_lib.prepare_video(inputs["video"], clip)
      shown_frames = generate_io.video_for_output(inputs["video"], clip)
      target = None
    job.stage = "generating"
    waveform = model.generate(frames[None], reference[None],
                              [inputs["seed"]])[0]
    job.stage = "writing the audio, video and spectrograms"
    generate_io.write_audio(job.folder / "generated.wav", waveform,
                            clip.sample_rate)
    generate_io.write_video_with_audio(job.folder / "generated.mp4",
                                       shown_frames, clip.fps, waveform,
                                       clip.sample_rate)
    panels = [("reference", reference), ("generated", waveform)]
    if target is not None:
      panels.append(("real recording of the video", target))
    spectrogram_image(job.folder / "spectrogram.png", panels,
                      clip.sample_rate)
    job.results = {"audio": "generated.wav", "video": "generated.mp4",
                   "spectrogram": "spectrogram.png"}

  def _run_wavegan(self, job: Job) -> None:
    model, inputs = self._model, job.inputs
    num_clips = inputs["num_clips"]
    job.stage = "generating"
    latents = model.latents(num_clips, inputs["seed"]) * inputs["scale"]
    # Padded to MAX_CLIPS: the one compiled shape.
    padded = generate_lib.fit_length(latents, MAX_CLIPS)
    waveforms = model.generate(padded, MAX_CLIPS)[:num_clips]
    job.stage = "writing the clips and spectrograms"
    for index, waveform in enumerate(waveforms):
      name = f"clip_{index}.wav"
      generate_io.write_audio(job.folder / name, waveform, model.sample_rate)
      job.results[f"clip_{index}"] = name
    spectrogram_image(job.folder / "spectrogram.png",
                      [(f"clip {i}", w[:, 0]) for i, w in enumerate(waveforms)],
                      model.sample_rate)
    job.results["spectrogram"] = "spectrogram.png"


def _enlarged(frames: np.ndarray) -> np.ndarray:
  """Model frames [T, S, S, 1] repeated EXAMPLE_SCALE times per side."""
  return np.repeat(np.repeat(frames, EXAMPLE_SCALE, axis=1), EXAMPLE_SCALE,
                   axis=2)


def spectrogram_image(path: pathlib.Path,
                      panels: list[tuple[str, np.ndarray]],
                      sample_rate: int) -> None:
  """Log spectrograms side by side, at most four to a row, as a PNG.

  Args:
    path: the .png to write.
    panels: (title, mono waveform) pairs.
    sample_rate: Hz of every waveform.
  """
  columns = min(4, len(panels))
  rows = math.ceil(len(panels) / columns)
  figure, axes = report.plt.subplots(rows, columns, squeeze=False,
                                     figsize=(3.2 * columns, 2.4 * rows))
  for axis in axes.flat[len(panels):]:
    axis.axis("off")
  for axis, (title, audio) in zip(axes.flat, panels):
    axis.imshow(report.log_spectrogram(audio), origin="lower", aspect="auto",
                cmap="magma",
                extent=(0, len(audio) / sample_rate, 0, sample_rate / 2))
    axis.set_title(title, fontsize=9)
    axis.set_xlabel("s", fontsize=7)
    axis.set_ylabel("Hz", fontsize=7)
    axis.tick_params(labelsize=6)
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  report.plt.close(figure)
