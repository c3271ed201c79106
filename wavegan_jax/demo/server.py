"""The demo's HTTP side: the page, its JSON API and the result files.

Standard library only (http.server): the page works offline and the core
install needs nothing more. `DemoApp.handle` maps one request to one
response and is what the tests call; `make_server` puts it behind a
threading HTTP server, whose threads only parse and queue: the generator
runs in the engine's single worker.

Routes:
  GET  /                      the page (static/index.html)
  GET  /api/info              workdir kind, load error, examples, limits
  POST /api/generate          multipart form -> 202 {"job": id}
  GET  /api/jobs/<id>         status, stage, queue position, result URLs
  GET  /files/<id>/<name>     a result file of a job
  GET  /examples/<i>/<name>   an example's reference.wav or original.mp4
"""

import dataclasses
import email.message
import email.parser
import email.policy
import http.server
import json
import math
import pathlib
import re
import shutil
import signal
import threading
import time
from typing import Any

from absl import logging

from wavegan_jax.demo import examples as examples_lib
from wavegan_jax.demo import jobs
from wavegan_jax.evaluation import generate as generate_lib

MAX_UPLOAD_BYTES = 50 * 1000 * 1000
PAGE = pathlib.Path(__file__).parent / "static" / "index.html"
MAX_SCALE = 100.0  # A latent scale beyond this only saturates the tanh.
_CONTENT_TYPES = {".wav": "audio/wav", ".mp4": "video/mp4",
                  ".png": "image/png", ".html": "text/html; charset=utf-8"}
_EXAMPLE_FILES = ("reference.wav", "original.mp4")
RequestError = jobs.RequestError


@dataclasses.dataclass(frozen=True)
class Response:
  status: int
  content_type: str
  body: bytes

  @classmethod
  def json(cls, value: Any, status: int = 200) -> "Response":
    return cls(status, "application/json",
               json.dumps(value).encode("utf-8"))

  @classmethod
  def error(cls, message: str, status: int = 400) -> "Response":
    return cls.json({"error": message}, status)


def parse_multipart(content_type: str, body: bytes
                    ) -> dict[str, tuple[str | None, bytes]]:
  """Splits a multipart/form-data body into its fields.

  Args:
    content_type: the request's Content-Type header (with the boundary).
    body: the request body.

  Returns:
    field name -> (file name or None for a plain field, raw bytes).

  Raises:
    RequestError: not a multipart form.
  """
  header = email.message.Message()
  header["content-type"] = content_type or ""
  boundary = header.get_param("boundary")
  if header.get_content_type() != "multipart/form-data" or not boundary:
    raise RequestError("error: request: not a multipart/form-data upload")
  fields = {}
  for part in body.split(b"--" + str(boundary).encode("latin-1"))[1:]:
    if part.startswith(b"--"):
      break
    head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
    headers = email.parser.BytesHeaderParser(
        policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
    name = headers.get_param("name", header="content-disposition")
    if name:
      fields[str(name)] = (headers.get_filename(),
                           content.removesuffix(b"\r\n"))
  return fields


def safe_file_name(name: str, field: str) -> str:
  """The last path part of an upload's name, with only plain characters."""
  name = re.sub(r"[^A-Za-z0-9._ -]", "_", name.replace("\\", "/")
                .rsplit("/", 1)[-1]).strip()[-100:]
  if not name.strip("._ "):
    name = f"{field}.bin"
  return name.lstrip(".") or field


def _field_text(fields, name: str, default: str = "") -> str:
  return fields.get(name, (None, default.encode()))[1].decode(
      "utf-8", "replace").strip()


def _parse_number(fields, name: str, kind: type, default: str):
  text = _field_text(fields, name, default) or default
  try:
    value = kind(text)
  except ValueError:
    what = "an integer" if kind is int else "a number"
    raise RequestError(f"error: {name}: not {what}, got {text!r}") from None
  if kind is float and not math.isfinite(value):
    raise RequestError(f"error: {name}: must be finite, got {text!r}")
  return value


class DemoApp:
  """Requests -> responses for a `jobs.DemoEngine`."""

  def __init__(self, engine: jobs.DemoEngine,
               max_upload_bytes: int = MAX_UPLOAD_BYTES):
    self.engine = engine
    self.max_upload_bytes = max_upload_bytes

  def info(self) -> dict[str, Any]:
    engine, clip = self.engine, self.engine.clip
    return {
        "kind": engine.kind, "workdir": str(engine.workdir),
        "error": engine.load_error,
        "max_upload_bytes": self.max_upload_bytes,
        "examples": [{"index": i, "name": e.name,
                      "reference": f"/examples/{i}/reference.wav",
                      "video": f"/examples/{i}/original.mp4"}
                     for i, e in enumerate(engine.examples)],
        "clip_seconds": clip.seconds if clip else None,
        "sample_rate": clip.sample_rate if clip else None,
        "max_clips": jobs.MAX_CLIPS}

  def too_large(self, content_length: int) -> Response | None:
    """The 413 answer to an upload over the limit, else None."""
    if content_length <= self.max_upload_bytes:
      return None
    return Response.error(
        f"error: upload: {content_length / 1e6:.1f} MB is over the "
        f"{self.max_upload_bytes / 1e6:g} MB limit", 413)

  def handle(self, method: str, path: str, content_type: str = "",
             body: bytes = b"") -> Response:
    """Answers one request.

    Args:
      method: 'GET' or 'POST'.
      path: the URL path (a query string is ignored).
      content_type: the request's Content-Type (POST).
      body: the request body (POST).

    Returns:
      The response; a bad request is a 4xx with {"error": one line}.
    """
    path = path.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    try:
      if method == "GET":
        return self._get(parts)
      if method == "POST" and parts == ["api", "generate"]:
        too_large = self.too_large(len(body))
        if too_large:
          return too_large
        job = self._new_job(parse_multipart(content_type, body))
        return Response.json({"job": job.id}, 202)
      return Response.error(f"error: {method} {path}: no such page", 404)
    except RequestError as error:
      return Response.error(str(error))
    except Exception as error:  # pylint: disable=broad-except
      # A bug or a full disk must not stop the server: one line, and the
      # traceback in the log.
      logging.exception("%s %s failed.", method, path)
      return Response.error(
          f"error: internal: {type(error).__name__}: {error}", 500)

  def _get(self, parts: list[str]) -> Response:
    if parts in ([], ["index.html"]):
      return Response(200, _CONTENT_TYPES[".html"], PAGE.read_bytes())
    if parts == ["api", "info"]:
      return Response.json(self.info())
    if len(parts) == 3 and parts[:2] == ["api", "jobs"]:
      job = self.engine.job(parts[2])
      if job is None:
        return Response.error(f"error: job {parts[2]}: no such job (the "
                              "server keeps the last "
                              f"{jobs.KEPT_JOBS})", 404)
      return Response.json(self.job_state(job))
    if len(parts) == 3 and parts[0] == "files":
      job = self.engine.job(parts[1])
      if job is not None and parts[2] in job.results.values():
        return self._file(job.folder / parts[2])
    if (len(parts) == 3 and parts[0] == "examples" and parts[1].isdigit()
        and int(parts[1]) < len(self.engine.examples)
        and parts[2] in _EXAMPLE_FILES):
      return self._file(self.engine.example_dir(int(parts[1])) / parts[2])
    return Response.error(f"error: /{'/'.join(parts)}: no such page", 404)

  def _file(self, path: pathlib.Path) -> Response:
    return Response(200, _CONTENT_TYPES[path.suffix], path.read_bytes())

  def job_state(self, job: jobs.Job) -> dict[str, Any]:
    now = job.finished or time.monotonic()
    return {
        "id": job.id, "status": job.status, "stage": job.stage,
        "error": job.error, "position": self.engine.position(job),
        "elapsed": round(now - job.submitted, 2),
        "seconds": job.seconds(),
        "results": {name: f"/files/{job.id}/{file}"
                    for name, file in job.results.items()}}

  def _new_job(self, fields) -> jobs.Job:
    engine = self.engine
    if engine.kind is None:
      raise RequestError(engine.load_error)
    seed = _parse_number(fields, "seed", int, "0")
    if engine.kind != generate_lib.AV_KIND:
      scale = _parse_number(fields, "scale", float, "1")
      num_clips = _parse_number(fields, "num_clips", int, "4")
      if not 0 < scale <= MAX_SCALE:
        raise RequestError(f"error: scale: must be in (0, {MAX_SCALE:g}], "
                           f"got {scale:g}")
      if not 1 <= num_clips <= jobs.MAX_CLIPS:
        raise RequestError(f"error: num_clips: must be 1 to "
                           f"{jobs.MAX_CLIPS}, got {num_clips}")
      return engine.submit(engine.new_job(
          {"seed": seed, "scale": scale, "num_clips": num_clips}))
    example = _field_text(fields, "example")
    if example:
      if not example.isdigit() or int(example) >= len(engine.examples):
        raise RequestError(f"error: example: no example {example!r}")
      return engine.submit(engine.new_job({"seed": seed,
                                           "example": int(example)}))
    for field in ("video", "reference"):
      if not (fields.get(field) or (None,))[0]:
        raise RequestError(f"error: {field}: no file given; upload one or "
                           "pick an example")
    job = engine.new_job({"seed": seed})
    try:
      for field in ("video", "reference"):
        file_name, data = fields[field]
        # A folder per field: the two uploads may share a name.
        path = job.upload_dir / field / safe_file_name(file_name, field)
        path.parent.mkdir()
        path.write_bytes(data)
        job.inputs[field] = str(path)
        job.shown_names[str(path)] = path.name
    except OSError:
      shutil.rmtree(job.folder, ignore_errors=True)
      raise
    return engine.submit(job)


class _Handler(http.server.BaseHTTPRequestHandler):
  """Reads a request, asks the DemoApp, writes its response."""

  app: DemoApp  # Set on the subclass that make_server builds.
  protocol_version = "HTTP/1.1"

  def do_GET(self):  # pylint: disable=invalid-name
    self._send(self.app.handle("GET", self.path))

  def do_POST(self):  # pylint: disable=invalid-name
    length = int(self.headers.get("Content-Length") or 0)
    too_large = self.app.too_large(length)
    if too_large:
      # Read (and drop) a moderate excess so the browser sees the answer;
      # a huge one is cut off with the connection.
      remaining = length if length <= 4 * self.app.max_upload_bytes else 0
      while remaining > 0:
        chunk = self.rfile.read(min(remaining, 1 << 20))
        if not chunk:
          break
        remaining -= len(chunk)
      self.close_connection = True
      self._send(too_large)
      return
    body = self.rfile.read(length)
    self._send(self.app.handle("POST", self.path,
                               self.headers.get("Content-Type", ""), body))

  def _send(self, response: Response) -> None:
    self.send_response(response.status)
    self.send_header("Content-Type", response.content_type)
    self.send_header("Content-Length", str(len(response.body)))
    self.send_header("Cache-Control", "no-store")
    if self.close_connection:
      self.send_header("Connection", "close")
    self.end_headers()
    self.wfile.write(response.body)

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    logging.debug("%s " + format, self.address_string(), *args)


def make_server(app: DemoApp, host: str = "127.0.0.1",
                port: int = 0) -> http.server.ThreadingHTTPServer:
  """An HTTP server for `app`, bound but not yet serving (port 0: any free)."""
  handler = type("DemoHandler", (_Handler,), {"app": app})
  server = http.server.ThreadingHTTPServer((host, port), handler)
  server.daemon_threads = True
  return server


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def serve(workdir: str, *, host: str = "127.0.0.1", port: int = 7860,
          data_dir: str | None = None, manual_dir: str | None = None,
          max_upload_bytes: int = MAX_UPLOAD_BYTES) -> None:
  """Loads the workdir's generator and serves the page until interrupted.

  Args:
    workdir: an audio-visual or WaveGAN run directory.
    host: the address to bind (127.0.0.1: this machine only).
    port: the port (0: any free one; the URL is printed).
    data_dir: TFDS data dir with prepared AV-digits, for the examples.
    manual_dir: raw FSDD / MNIST folder to prepare the examples from.
    max_upload_bytes: the largest request accepted.
  """
  examples = []
  try:
    kind, config = generate_lib.read_workdir_config(workdir)
  except generate_lib.GenerateError:
    kind = None  # The engine reports it, in the log and the page.
  if kind == generate_lib.AV_KIND:
    examples = examples_lib.load_test_examples(
        config, data_dir=data_dir or config.data.get("data_dir"),
        manual_dir=manual_dir or config.data.get("manual_dir"))
  engine = jobs.DemoEngine(workdir, examples=examples,
                           report=lambda line: print(line, flush=True))
  try:
    server = make_server(DemoApp(engine, max_upload_bytes), host, port)
  except OSError as error:
    engine.close()
    raise generate_lib.GenerateError(
        f"--host={host} --port={port}",
        f"cannot serve there ({error.strerror or error})") from error
  bound_host, bound_port = server.server_address[:2]
  if threading.current_thread() is threading.main_thread():
    # `kill` (SIGTERM) stops it as Ctrl-C does: the temporary folder goes.
    signal.signal(signal.SIGTERM, _interrupt)
  print(f"Temporary files in {engine.root} (deleted on exit)", flush=True)
  print(f"Serving {workdir} ({engine.kind or 'not loaded'}) at "
        f"http://{bound_host}:{bound_port}/  (Ctrl-C stops)", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
    engine.close()
