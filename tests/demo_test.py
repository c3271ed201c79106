"""Tests of the demo page (wavegan_jax/demo, launch/demo.py).

The request handler is driven in-process (DemoApp.handle, no sockets); one
test starts launch/demo.py on a free port and drives the page in a headless
Chromium through Selenium. The workdir is av_digits:tiny with random params
exported where training exports them.
"""

import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import av
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import soundfile

from experiments import av_digits as av_digits_config
from experiments import wavegan as wavegan_config
from wavegan_jax import inference
from wavegan_jax.demo import examples as examples_lib
from wavegan_jax.demo import jobs
from wavegan_jax.demo import server
from wavegan_jax.evaluation import generate_command
from wavegan_jax.training import checkpointing

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_SAMPLES, SAMPLE_RATE = 8192, 8000  # av_digits:tiny's clip.
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def av_workdir(tmp_path_factory):
  """An av_digits:tiny workdir whose generator export holds random params.

  What the demo does with a generator does not depend on how it was
  trained; random params of the config's shapes (from jax.eval_shape of the
  models' init, seconds where init or training takes minutes here) are
  written where training exports them.
  """
  config = av_digits_config.get_config("tiny")
  workdir = tmp_path_factory.mktemp("av_tiny")
  (workdir / "config.json").write_text(
      config.to_json_best_effort(indent=1, sort_keys=True))
  modules = inference.av_models(config)
  example = inference.av_example_inputs(config)

  def init(rng):
    params = {
        "acoustic": modules["acoustic"].init(rng, example["target"])["params"],
        "visual": modules["visual"].init(rng, example["video"])["params"]}
    contexts = inference.conditioning(modules, params, example)
    noise = jnp.zeros((1, config.generator.model.noise_features))
    params["generator"] = modules["generator"].init(rng, *contexts,
                                                    z=noise)["params"]
    return params

  shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
  normal = np.random.default_rng(0).standard_normal
  params = jax.tree_util.tree_map(
      lambda leaf: (0.1 * normal(leaf.shape)).astype(leaf.dtype), shapes)
  checkpointing.export_params(str(workdir / "generator" / "export"), params)
  return workdir


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  """Good and bad input files, written once for the module."""
  folder = tmp_path_factory.mktemp("demo_inputs")
  files = {"mp4": folder / "clip.mp4"}
  with av.open(str(files["mp4"]), "w") as container:  # 1.2 s, no audio.
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
    for i in range(30):
      image = np.zeros((32, 48, 3), np.uint8)
      image[4:28, i:i + 16] = (220, 120, 40)
      container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
    container.mux(stream.encode(None))
  files["voice"] = folder / "voice.wav"
  seconds = np.arange(12000) / 16000
  soundfile.write(str(files["voice"]), 0.3 * np.sin(2 * np.pi * 220 * seconds)
                  * np.sin(np.pi * seconds / seconds[-1]), 16000)
  data = files["mp4"].read_bytes()
  files["truncated"] = folder / "truncated.mp4"
  files["truncated"].write_bytes(data[:len(data) // 2])
  files["text"] = folder / "notes.wav"
  files["text"].write_text("not audio at all\n" * 20)
  files["silent"] = folder / "silent.wav"
  soundfile.write(str(files["silent"]), np.zeros(4000), 8000)
  files["empty"] = folder / "empty.wav"
  files["empty"].write_bytes(b"")
  files["frameless"] = folder / "sound_only.mp4"
  with av.open(str(files["frameless"]), "w") as container:
    stream = container.add_stream("aac", rate=8000)
    stream.layout = "mono"
    frame = av.AudioFrame.from_ndarray(np.full((1, 4096), 0.1, np.float32),
                                       format="flt", layout="mono")
    frame.sample_rate = 8000
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  files["gif"] = folder / "moving.gif"
  frames = [Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8),
                                   ((4, 20), (i, 24 - i)))) for i in range(24)]
  frames[0].save(files["gif"], save_all=True, append_images=frames[1:],
                 duration=40, loop=0)
  return files


@pytest.fixture(scope="module")
def engine(av_workdir, av_digits_data_dir):
  _, config = generate_command.generate_lib.read_workdir_config(av_workdir)
  examples = examples_lib.load_test_examples(
      config, data_dir=str(av_digits_data_dir))
  demo_engine = jobs.DemoEngine(str(av_workdir), examples=examples)
  yield demo_engine
  demo_engine.close()


def multipart(fields: dict) -> tuple[str, bytes]:
  """(Content-Type, body) of a form: str values, or (file name, bytes)."""
  boundary = "----demo-test-boundary-5f2c"
  body = io.BytesIO()
  for name, value in fields.items():
    body.write(f"--{boundary}\r\n".encode())
    if isinstance(value, tuple):
      body.write(f'Content-Disposition: form-data; name="{name}"; '
                 f'filename="{value[0]}"\r\nContent-Type: '
                 "application/octet-stream\r\n\r\n".encode())
      body.write(value[1])
    else:
      body.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
                 f"{value}".encode())
    body.write(b"\r\n")
  body.write(f"--{boundary}--\r\n".encode())
  return f"multipart/form-data; boundary={boundary}", body.getvalue()


def post(app, fields):
  response = app.handle("POST", "/api/generate", *multipart(fields))
  return response, json_of(response)


def json_of(response):
  return json.loads(response.body)


def run_job(app, engine_, fields, timeout=120):
  """Posts a form, waits for its job and returns the job's state."""
  response, answer = post(app, fields)
  assert response.status == 202, answer
  job = engine_.job(answer["job"])
  assert engine_.wait(job, timeout)
  return json_of(app.handle("GET", f"/api/jobs/{job.id}")), job


def upload(path, name=None):
  return (name or path.name, path.read_bytes())


def cli_error(workdir, video, reference, tmp_path, capsys):
  """The line launch/generate.py prints for these inputs, paths cut."""
  status = generate_command.run(str(workdir), video=str(video),
                                reference=str(reference),
                                output=str(tmp_path / "cli.wav"))
  assert status == 2
  line = capsys.readouterr().err.strip()
  return (line.replace(str(video), video.name)
          .replace(str(reference), reference.name))


def test_upload_gives_the_audio_generate_writes(engine, av_workdir, inputs,
                                                tmp_path, capsys):
  app = server.DemoApp(engine)
  state, job = run_job(app, engine, {"video": upload(inputs["mp4"]),
                                     "reference": upload(inputs["voice"]),
                                     "seed": "5"})
  assert state["status"] == "done", state
  assert set(state["results"]) == {"audio", "video", "spectrogram"}
  audio_response = app.handle("GET", state["results"]["audio"])
  assert audio_response.content_type == "audio/wav"
  audio, rate = soundfile.read(io.BytesIO(audio_response.body),
                               dtype="float32")
  assert (audio.shape, rate) == ((NUM_SAMPLES,), SAMPLE_RATE)
  # The same clip as the command line's, for the same files and seed.
  assert generate_command.run(
      str(av_workdir), video=str(inputs["mp4"]),
      reference=str(inputs["voice"]), output=str(tmp_path / "cli.wav"),
      seed=5) == 0, capsys.readouterr().err
  np.testing.assert_allclose(
      audio, soundfile.read(str(tmp_path / "cli.wav"), dtype="float32")[0],
      atol=2 / 32768)
  assert np.any(audio)
  with av.open(io.BytesIO(app.handle("GET",
                                     state["results"]["video"]).body)) as box:
    assert abs(box.duration / 1e6 - NUM_SAMPLES / SAMPLE_RATE) < 0.05
    frames = list(box.decode(video=0))
  assert (len(frames), frames[0].width, frames[0].height) == (32, 48, 32)
  png = app.handle("GET", state["results"]["spectrogram"])
  assert png.body[:8] == b"\x89PNG\r\n\x1a\n"
  # The uploads are gone; only the results stay.
  assert not job.upload_dir.exists()
  assert sorted(os.listdir(job.folder)) == [
      "generated.mp4", "generated.wav", "spectrogram.png"]


def test_gif_and_example_generate(engine, inputs):
  app = server.DemoApp(engine)
  state, _ = run_job(app, engine, {"video": upload(inputs["gif"]),
                                   "reference": upload(inputs["voice"])})
  assert state["status"] == "done", state
  info = json_of(app.handle("GET", "/api/info"))
  assert [e["name"].split(",")[0] for e in info["examples"]] == [
      f"digit {d}" for d in range(10)]
  reference = app.handle("GET", info["examples"][3]["reference"])
  assert soundfile.read(io.BytesIO(reference.body))[0].shape == (NUM_SAMPLES,)
  state, _ = run_job(app, engine, {"example": "3", "seed": "1"})
  assert state["status"] == "done", state
  audio = soundfile.read(io.BytesIO(
      app.handle("GET", state["results"]["audio"]).body))[0]
  # The example's own arrays, as the generator takes them.
  example = engine.examples[3]
  expected = engine._model.generate(  # pylint: disable=protected-access
      example.frames[None], example.reference[None], [1])[0]
  np.testing.assert_allclose(audio, np.clip(expected, -1, 1), atol=2 / 32768)


# (name, video, reference): each gives the command line's error line.
BAD_FILES = [("broken_video", "truncated", "voice"),
             ("non_audio_reference", "mp4", "text"),
             ("silent_reference", "mp4", "silent"),
             ("empty_reference", "mp4", "empty"),
             ("frameless_video", "frameless", "voice")]


@pytest.mark.parametrize("case", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_file_gets_the_command_line_error(case, engine, av_workdir,
                                              inputs, tmp_path, capsys):
  _, video, reference = case
  app = server.DemoApp(engine)
  state, job = run_job(app, engine, {"video": upload(inputs[video]),
                                     "reference": upload(inputs[reference])})
  expected = cli_error(av_workdir, inputs[video], inputs[reference],
                       tmp_path, capsys)
  assert state["status"] == "error"
  assert state["error"] == expected
  named = inputs[video if case[0].endswith("video") else reference].name
  assert "\n" not in expected and expected.startswith(f"error: {named}:")
  assert not job.upload_dir.exists()


def test_form_problems_are_one_line_4xx(engine, inputs):
  app = server.DemoApp(engine, max_upload_bytes=1000)
  response, answer = post(app, {"video": upload(inputs["mp4"]),
                                "reference": ("", b"")})
  assert response.status == 413
  assert re.fullmatch(r"error: upload: 0\.\d MB is over the 0\.001 MB limit",
                      answer["error"])
  app = server.DemoApp(engine)
  cases = [({"video": upload(inputs["mp4"]), "reference": ("", b"")},
            "error: reference: no file given; upload one or pick an example"),
           ({"example": "12"}, "error: example: no example '12'"),
           ({"example": "1", "seed": "x"},
            "error: seed: not an integer, got 'x'")]
  for fields, message in cases:
    response, answer = post(app, fields)
    assert (response.status, answer) == (400, {"error": message})
  assert app.handle("POST", "/api/generate", "text/plain", b"hi").status == 400
  assert app.handle("GET", "/api/jobs/999999").status == 404
  assert app.handle("GET", "/files/1/../../config.json").status == 404


def test_requests_queue_behind_a_running_one(engine, inputs, monkeypatch):
  app = server.DemoApp(engine)
  model = engine._model  # pylint: disable=protected-access
  release, started = threading.Event(), threading.Event()
  real_generate = model.generate

  def held_generate(*args):
    started.set()
    release.wait(60)
    return real_generate(*args)

  monkeypatch.setattr(model, "generate", held_generate)
  monkeypatch.setattr(jobs, "MAX_QUEUED", 1)
  fields = {"example": "0"}
  first = post(app, fields)[1]["job"]
  assert started.wait(60)
  second = post(app, fields)[1]["job"]
  state = json_of(app.handle("GET", f"/api/jobs/{second}"))
  assert (state["status"], state["position"]) == ("queued", 1)
  response, answer = post(app, fields)
  assert response.status == 400
  assert answer["error"].startswith("error: the queue is full (1 requests")
  release.set()
  for job_id in (first, second):
    assert engine.wait(engine.job(job_id), 60)
    assert engine.job(job_id).status == "done"


def test_workdir_without_generator(av_workdir, inputs, tmp_path, capsys):
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  shutil.copy(av_workdir / "config.json", untrained / "config.json")
  expected = cli_error(untrained, inputs["mp4"], inputs["voice"], tmp_path,
                       capsys)
  assert "no trained generator" in expected
  demo_engine = jobs.DemoEngine(str(untrained), temp_dir=str(tmp_path))
  try:
    assert demo_engine.load_error == expected
    app = server.DemoApp(demo_engine)
    assert json_of(app.handle("GET", "/api/info"))["error"] == expected
    state, _ = run_job(app, demo_engine, {"video": upload(inputs["mp4"]),
                                          "reference": upload(inputs["voice"])})
    assert (state["status"], state["error"]) == ("error", expected)
  finally:
    demo_engine.close()
  assert not demo_engine.root.exists()


@pytest.fixture(scope="module")
def wavegan_workdir(tmp_path_factory):
  """A wavegan:tiny workdir whose generator export holds random params."""
  config = wavegan_config.get_config("tiny")
  workdir = tmp_path_factory.mktemp("wavegan_tiny")
  (workdir / "config.json").write_text(
      config.to_json_best_effort(indent=1, sort_keys=True))
  generator = inference.wavegan_models(config)[0]
  shapes = jax.eval_shape(lambda: generator.init(
      jax.random.PRNGKey(0), jnp.zeros((1, config.wavegan.latent_dim))))
  normal = np.random.default_rng(0).standard_normal
  params = jax.tree_util.tree_map(
      lambda leaf: (0.1 * normal(leaf.shape)).astype(leaf.dtype),
      shapes["params"])
  checkpointing.export_params(str(workdir / "wavegan" / "export"),
                              {"generator": params})
  return workdir


def test_wavegan_page_generates_scaled_latents(wavegan_workdir, tmp_path):
  demo_engine = jobs.DemoEngine(str(wavegan_workdir), temp_dir=str(tmp_path))
  try:
    app = server.DemoApp(demo_engine)
    info = json_of(app.handle("GET", "/api/info"))
    assert (info["kind"], info["error"], info["examples"]) == (
        "wavegan", None, [])
    state, _ = run_job(app, demo_engine, {"seed": "2", "scale": "0.5",
                                          "num_clips": "3"})
    assert state["status"] == "done", state
    assert sorted(state["results"]) == ["clip_0", "clip_1", "clip_2",
                                        "spectrogram"]
    clips = [soundfile.read(io.BytesIO(app.handle(
        "GET", state["results"][f"clip_{i}"]).body), dtype="float32")
             for i in range(3)]
    assert all(rate == 8000 for _, rate in clips)
    # The reference: the command line's latents for the seed, scaled.
    model = generate_command.generate_lib.WaveGANGenerator(
        str(wavegan_workdir))
    expected = model.generate(model.latents(3, 2) * 0.5)[:, :, 0]
    assert expected.shape == (3, 8192)
    np.testing.assert_allclose(np.stack([c for c, _ in clips]),
                               np.clip(expected, -1, 1), atol=2 / 32768)
    for fields, message in [
        ({"scale": "0"}, "error: scale: must be in (0, 100], got 0"),
        ({"scale": "nan"}, "error: scale: must be finite, got 'nan'"),
        ({"num_clips": "17"}, "error: num_clips: must be 1 to 16, got 17")]:
      response, answer = post(app, fields)
      assert (response.status, answer) == (400, {"error": message})
  finally:
    demo_engine.close()


def _browser():
  """A headless system Chromium through Selenium, or a skip reason."""
  # pylint: disable=g-import-not-at-top
  try:
    from selenium import webdriver
    from selenium.webdriver.chrome import service
  except ImportError:
    pytest.skip("selenium is not installed (pip install -e '.[demo]')")
  for path in (CHROMIUM, CHROMEDRIVER):
    if not os.access(path, os.X_OK):
      pytest.skip(f"{path} not found: apt-get install chromium "
                  "chromium-driver (.ci/run does)")
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu",
               "--disable-quic", "--no-first-run",
               "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--window-size=1100,900",
               "--autoplay-policy=no-user-gesture-required"):
    options.add_argument(flag)
  return webdriver.Chrome(options=options,
                          service=service.Service(CHROMEDRIVER))


def _start_server(av_workdir, av_digits_data_dir):
  process = subprocess.Popen(
      [sys.executable, str(REPO / "launch" / "demo.py"),
       f"--workdir={av_workdir}", "--port=0",
       f"--data_dir={av_digits_data_dir}"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
      # This checkout's package, whichever one the environment installed.
      env={**os.environ, "PYTHONPATH": os.pathsep.join(
          filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
  lines = []
  for line in process.stdout:  # 'Loaded ...', 'Temporary ...', 'Serving ...'
    lines.append(line)
    match = re.search(r"^Serving .* at (http://127\.0\.0\.1:\d+/)", line)
    if match:
      folder = re.search(r"^Temporary files in (\S+) ", "".join(lines), re.M)
      return process, match.group(1), pathlib.Path(folder.group(1))
  process.kill()
  pytest.fail(f"launch/demo.py did not start: {lines!r}")


# In the page: decode the audio element's source at its own rate.
DECODE_AUDIO = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById("result-audio").src)
  .then((reply) => reply.arrayBuffer())
  .then((data) => new OfflineAudioContext(1, 1, 8000).decodeAudioData(data))
  .then((buffer) => done([buffer.length, buffer.sampleRate]))
  .catch((error) => done(String(error)));
"""


def test_page_in_a_headless_browser(av_workdir, av_digits_data_dir, inputs,
                                    tmp_path, capsys):
  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.common import by
  from selenium.webdriver.support import ui
  browser = _browser()
  process, url, temp_folder = _start_server(av_workdir, av_digits_data_dir)
  try:
    browser.get(url)
    find = lambda id_: browser.find_element(by.By.ID, id_)
    wait = ui.WebDriverWait(browser, 90, poll_frequency=0.2)
    wait.until(lambda _: find("av-form").is_displayed())
    assert "audio-visual" in find("workdir").text
    find("video").send_keys(str(inputs["mp4"]))
    find("reference").send_keys(str(inputs["voice"]))
    find("generate").click()
    wait.until(lambda _: find("result-audio").get_attribute("src")
               or find("error").text)
    assert find("error").text == ""
    assert re.fullmatch(r"generated in \d+\.\d\d s", find("took").text)
    browser.set_script_timeout(30)
    assert browser.execute_async_script(DECODE_AUDIO) == [NUM_SAMPLES,
                                                          SAMPLE_RATE]
    # The muxed video plays: the browser reads its length.
    wait.until(lambda _: browser.execute_script(
        "return document.getElementById('result-video').readyState") >= 1)
    duration = browser.execute_script(
        "return document.getElementById('result-video').duration")
    assert abs(duration - NUM_SAMPLES / SAMPLE_RATE) < 0.05
    # A broken video: the command line's error, in the page.
    find("video").send_keys(str(inputs["truncated"]))
    find("generate").click()
    wait.until(lambda _: find("error").text)
    assert find("error").text == cli_error(
        av_workdir, inputs["truncated"], inputs["voice"], tmp_path, capsys)
    assert find("av-results").is_displayed() is False
    assert process.poll() is None  # Still serving.
  finally:
    browser.quit()
    process.terminate()
    try:
      process.wait(120)
    except subprocess.TimeoutExpired:
      process.kill()
      raise
  assert temp_folder.name.startswith("wavegan-demo-")
  assert not temp_folder.exists()  # Uploads and results deleted on exit.
