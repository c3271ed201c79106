"""End-to-end tests of the stage trainers on the tiny AV-digits config."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import assert_trees_equal
from tests.conftest import tiny_av_config
from wavegan_jax import errors
from wavegan_jax import inference
from wavegan_jax.training import checkpointing
from wavegan_jax.training import export
from wavegan_jax.training import optimizers as optimizers_lib
from wavegan_jax.training import stage_runner
from wavegan_jax.training import trainer
from wavegan_jax.training.stages import autoencoders
from wavegan_jax.training.stages import generator as generator_stage

REPO = pathlib.Path(__file__).resolve().parents[1]


tiny_config = tiny_av_config


def load_export(workdir, stage):
  return checkpointing.load_params(checkpointing.export_path(workdir, stage))


@pytest.fixture(scope="module")
def tiny_run(av_digits_data_dir, manual_dir, tmp_path_factory):
  """All three stages of the tiny config, trained once for this module."""
  workdir = tmp_path_factory.mktemp("tiny_run")
  results = trainer.train_and_evaluate(
      tiny_config(), str(workdir), manual_dir=str(manual_dir),
      data_dir=str(av_digits_data_dir))
  return workdir, results


def test_tiny_run_writes_every_artifact(tiny_run):
  workdir, results = tiny_run
  assert set(results) == {"acoustic", "visual", "generator"}
  config = json.loads((workdir / "config.json").read_text())
  assert config["variant"] == "tiny"
  for stage in results:
    stage_dir = workdir / stage
    assert (stage_dir / "export").is_dir()
    assert sorted(os.listdir(stage_dir / "checkpoints")) == ["4", "6"]
    assert list(stage_dir.glob("events.out.tfevents.*"))
    lines = [json.loads(line) for line in
             (stage_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6]
    for key in ("loss", "grad_norm" if stage != "generator" else "g_grad_norm",
                "learning_rate", "examples_per_second"):
      assert all(np.isfinite(line[key]) for line in lines), key
  tags = set()
  for events in (workdir / "generator").glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(events)):
      tags.update(value.tag for value in event.summary.value)
  assert {"generator/samples/generated", "generator/samples/real",
          "generator/samples/generated_spectrogram",
          "generator/train/stft", "generator/train/d_loss"} <= tags
  generator_terms = json.loads(
      (workdir / "generator" / "final_metrics.json").read_text())
  for term in ("stft", "adversarial", "feature_matching", "d_loss"):
    assert np.isfinite(generator_terms[term])


def _generator_spec(config, trained_workdir, workdir, manual_dir, data_dir):
  """The generator stage's spec in `workdir` on the trained run's encoders."""
  for stage in ("acoustic", "visual"):
    shutil.copytree(trained_workdir / stage, workdir / stage)
  return generator_stage.make_spec(config, str(workdir), manual_dir=str(
      manual_dir), data_dir=str(data_dir))

def test_reconstruction_only_generator_leaves_the_critic_untouched(
    tiny_run, av_digits_data_dir, manual_dir, tmp_path):
  # Both critic weights 0 (the default's setting): the critic is not run, its
  # parameters stay at their initial values and its metrics read 0.
  workdir, _ = tiny_run
  config = tiny_config(**{"generator.loss_weights.adversarial": 0.0,
                          "generator.loss_weights.feature_matching": 0.0,
                          "generator.visual_noise_std": 0.5,
                          "generator.train.num_steps": 2})
  spec = _generator_spec(config, workdir, tmp_path, manual_dir,
                         av_digits_data_dir)
  state = spec.init_fn()
  batch = next(iter(spec.make_batches(0)))
  new_state, metrics = jax.jit(spec.step_fn)(state, batch,
                                             jax.random.PRNGKey(0))
  assert_trees_equal(new_state["params"]["discriminator"],
                     state["params"]["discriminator"])
  for name in ("d_loss", "d_real", "d_fake", "d_grad_norm", "adversarial"):
    assert float(metrics[name]) == 0.0
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))),
      new_state["params"]["generator"], state["params"]["generator"]))
  assert max(moved) > 0
  assert np.isfinite(float(metrics["stft"]))


def test_visual_noise_is_seeded_and_off_at_zero(tiny_run):
  workdir, _ = tiny_run
  config = tiny_config()
  modules = inference.av_models(config)
  params = checkpointing.load_params(
      checkpointing.export_path(str(workdir), "generator"))
  batch = {k: v[:2] for k, v in inference.av_example_inputs(
      config, 2).items()}
  batch["video"] = batch["video"] + np.uint8(120)
  encoders = {name: params[name] for name in ("acoustic", "visual")}
  z = jax.numpy.zeros((2, config.generator.model.noise_features))

  def run(noise):
    return np.asarray(inference.generate(
        modules, params["generator"], encoders, batch, z, noise))
  clean = run(None)
  np.testing.assert_array_equal(run((0.0, jax.random.PRNGKey(1))), clean)
  noisy = run((0.5, jax.random.PRNGKey(1)))
  np.testing.assert_array_equal(run((0.5, jax.random.PRNGKey(1))), noisy)
  assert np.max(np.abs(noisy - clean)) > 1e-6


def test_finished_stages_are_skipped(tiny_run, manual_dir, av_digits_data_dir,
                                     capsys):
  workdir, results = tiny_run
  again = trainer.train_and_evaluate(
      tiny_config(), str(workdir), manual_dir=str(manual_dir),
      data_dir=str(av_digits_data_dir))
  assert again == results
  assert capsys.readouterr().out.count("already finished, skipped") == 3


def test_separate_strategy_keeps_encoders_bit_identical(tiny_run):
  workdir, _ = tiny_run
  generator_export = load_export(workdir, "generator")
  for encoder in ("acoustic", "visual"):
    assert_trees_equal(generator_export[encoder],
                       load_export(workdir, encoder))


@pytest.mark.slow
def test_joint_strategy_fine_tunes_encoders_but_the_frozen_groups(
    tiny_run, manual_dir, av_digits_data_dir, tmp_path):
  workdir, _ = tiny_run
  joint_dir = tmp_path / "joint"
  for stage in ("acoustic", "visual"):
    # Start from the same encoder exports as the separate run.
    os.makedirs(joint_dir / stage)
    (joint_dir / stage / "export").symlink_to(workdir / stage / "export")
    (joint_dir / stage / stage_runner.FINAL_METRICS).write_text("{}")
  # Weight decay moves every parameter it reaches, gradient or not: the
  # frozen groups must still come out bit-identical.
  config = tiny_config(**{"strategy": "joint",
                          "generator.joint_frozen": ("visual/conv_layers",),
                          "generator.train.weight_decay": 0.1})
  trainer.train_and_evaluate(
      config, str(joint_dir), stages=["generator"],
      manual_dir=str(manual_dir), data_dir=str(av_digits_data_dir))
  generator_export = load_export(joint_dir, "generator")

  def changed_groups(encoder):
    before = load_export(workdir, encoder)
    return {group: any(jax.tree_util.tree_leaves(jax.tree_util.tree_map(
        lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
        generator_export[encoder][group], before[group])))
            for group in before}

  acoustic, visual = changed_groups("acoustic"), changed_groups("visual")
  assert all(acoustic.values()), acoustic
  frozen = {g for g in visual if g.startswith("conv_layers")}
  assert frozen == {"conv_layers_0", "conv_layers_1"}
  assert not any(visual[g] for g in frozen), visual
  # The layer right after the frozen CNN still learns, so the gradient is
  # stopped at the frozen parameters, not at the whole encoder.
  assert visual["feature_projection"] and visual["context_projection"]


@pytest.mark.parametrize("entry, message", [
    ("visual/no_such_layer", r"'visual/no_such_layer' matches no encoder.*"
                             r"conv_layers_0"),
    ("video/conv_layers", r"'video/conv_layers' matches no encoder"),
    ("visual", r"'visual' matches no encoder"),
])
def test_joint_frozen_entry_matching_nothing_is_named(entry, message):
  params = {"acoustic": {"encoder_lstm": {"kernel": np.zeros(2)}},
            "visual": {"conv_layers_0": {"kernel": np.zeros(2)}}}
  config = tiny_config(**{"generator.joint_frozen": (entry,)})
  with pytest.raises(errors.UserFacingError, match=message):
    generator_stage.joint_frozen_mask(config, params)


def test_joint_frozen_mask_marks_the_groups_by_prefix():
  params = {"acoustic": {"encoder_lstm": {"kernel": np.zeros(2)}},
            "visual": {"conv_layers_0": {"kernel": np.zeros(2),
                                         "bias": np.zeros(1)},
                       "conv_layers_1": {"kernel": np.zeros(2)},
                       "encoder_lstm": {"kernel": np.zeros(2)}}}
  config = tiny_config(**{"generator.joint_frozen": ("visual/conv",)})
  mask = generator_stage.joint_frozen_mask(config, params)
  assert mask == {"acoustic": {"encoder_lstm": {"kernel": False}},
                  "visual": {"conv_layers_0": {"kernel": True, "bias": True},
                             "conv_layers_1": {"kernel": True},
                             "encoder_lstm": {"kernel": False}}}


@pytest.mark.slow
def test_mismatched_export_names_parameter_and_shapes(
    tiny_run, manual_dir, av_digits_data_dir, tmp_path):
  workdir, _ = tiny_run
  bad_dir = tmp_path / "bad"
  os.makedirs(bad_dir / "acoustic")
  os.makedirs(bad_dir / "visual")
  for stage in ("acoustic", "visual"):
    (bad_dir / stage / "export").symlink_to(workdir / stage / "export")
  config = tiny_config(**{"acoustic.model.context_features": 12})
  with pytest.raises(trainer.UserFacingError) as error:
    trainer.train_and_evaluate(config, str(bad_dir), stages=["generator"],
                               manual_dir=str(manual_dir),
                               data_dir=str(av_digits_data_dir))
  message = str(error.value)
  assert "acoustic" in message
  assert "context_projection" in message
  assert "(12,)" in message and "(8,)" in message


def test_autoencoder_reconstruction_falls_on_a_fixed_batch(
    av_digits_data_dir, manual_dir):
  config = tiny_config()
  # The visual features are learned (their target moves): the pixel term is
  # the stage's reconstruction measure.
  for stage, term in (("acoustic", "feature_mse"), ("visual", "frame_mse")):
    spec = autoencoders.make_spec(config, stage, manual_dir=str(manual_dir),
                                  data_dir=str(av_digits_data_dir))
    batch = next(spec.make_batches(0))
    state = spec.init_fn()
    step = jax.jit(spec.step_fn)
    values = []
    for i in range(25):
      state, metrics = step(state, batch, jax.random.PRNGKey(i))
      values.append(float(metrics[term]))
    assert values[-1] < 0.85 * values[0], (stage, values)


@pytest.mark.slow
def test_nan_in_batch_stops_with_step_and_term(av_digits_data_dir, manual_dir,
                                               tmp_path, monkeypatch):
  config = tiny_config(**{"train.checkpoint_every": 2})
  make_spec = autoencoders.make_spec

  def poisoned_spec(*args, **kwargs):
    spec = make_spec(*args, **kwargs)
    clean_batches = spec.make_batches

    def make_batches(start_step):
      for step, batch in enumerate(clean_batches(start_step), start_step):
        if step == 3:
          batch = dict(batch, target=np.full_like(batch["target"], np.nan))
        yield batch
    spec.make_batches = make_batches
    return spec

  monkeypatch.setattr(autoencoders, "make_spec", poisoned_spec)
  with pytest.raises(trainer.UserFacingError) as error:
    trainer.train_and_evaluate(config, str(tmp_path), stages=["acoustic"],
                               manual_dir=str(manual_dir),
                               data_dir=str(av_digits_data_dir))
  assert "at step 3" in str(error.value)
  assert "loss" in str(error.value)
  # Step 4's checkpoint would hold the NaN's update: only step 2's was kept.
  assert sorted(os.listdir(tmp_path / "acoustic" / "checkpoints")) == ["2"]


def _train_command(workdir, data_dir, manual_dir):
  return [sys.executable, str(REPO / "launch" / "train.py"),
          "--config=" + str(REPO / "experiments" / "av_digits.py") + ":tiny",
          f"--workdir={workdir}", "--stages=acoustic",
          f"--data_dir={data_dir}", f"--manual_dir={manual_dir}",
          "--config.acoustic.train.num_steps=40",
          "--config.train.checkpoint_every=2"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(av_digits_data_dir,
                                                  manual_dir, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  straight = tmp_path / "straight"
  subprocess.run(_train_command(straight, av_digits_data_dir, manual_dir),
                 check=True, env=env, capture_output=True)

  resumed = tmp_path / "resumed"
  process = subprocess.Popen(
      _train_command(resumed, av_digits_data_dir, manual_dir), env=env,
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  first_checkpoint = resumed / "acoustic" / "checkpoints" / "2"
  deadline = time.time() + 240
  while not (first_checkpoint / "commit_success.txt").exists():
    assert process.poll() is None, "training ended before its checkpoint"
    assert time.time() < deadline, "no checkpoint within 240 s"
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert not (resumed / "acoustic" / stage_runner.FINAL_METRICS).exists()

  subprocess.run(_train_command(resumed, av_digits_data_dir, manual_dir),
                 check=True, env=env, capture_output=True)
  assert_trees_equal(load_export(resumed, "acoustic"),
                     load_export(straight, "acoustic"))
  final = [json.loads((run / "acoustic" / stage_runner.FINAL_METRICS)
                      .read_text()) for run in (straight, resumed)]
  assert final[0] == final[1]


@pytest.mark.parametrize("strategy, averaged", [
    ("separate", ["generator"]),
    ("joint", ["acoustic", "generator", "visual"])])
@pytest.mark.slow
def test_generator_stage_ema_averages_the_trained_models_and_is_exported(
    tiny_run, manual_dir, av_digits_data_dir, strategy, averaged):
  workdir, _ = tiny_run
  config = tiny_config(**{"strategy": strategy,
                          "generator.train.ema_decay": 0.9})
  spec = generator_stage.make_spec(config, str(workdir),
                                   manual_dir=str(manual_dir),
                                   data_dir=str(av_digits_data_dir))
  state = spec.init_fn()
  assert sorted(state["ema_params"]) == averaged  # Never the critic.
  expected = state["params"]["generator"]
  batches = spec.make_batches(0)
  step = jax.jit(spec.step_fn)
  for t in range(2):
    state, _ = step(state, next(batches), jax.random.PRNGKey(t))
    decay = min(0.9, (1 + t) / (10 + t))
    expected = jax.tree_util.tree_map(
        lambda e, p, d=decay: d * e + (1 - d) * p, expected,
        state["params"]["generator"])
  for got, want in zip(jax.tree_util.tree_leaves(
      state["ema_params"]["generator"]), jax.tree_util.tree_leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  exported = spec.export_fn(state)
  for name in averaged:
    assert_trees_equal(exported[name], state["ema_params"][name])


def _visual_config(**visual):
  return ml_collections.ConfigDict({"visual": visual,
                                    "data": {"num_frames": 32}})


# (config key, its count from a config, what the fraction is of, cases).
@pytest.mark.parametrize("key, count, of_what, cases", [
    ("frame_budget",
     lambda c: autoencoders.visual_frame_budget(c, 4), "a batch's frames",
     {0.625: 80, 0.6: 77}),  # Of 4 x 32 frames; ceil(76.8).
    ("render_fraction", autoencoders.visual_render_frames,
     "a clip's frames", {0.25: 8, 0.3: 10})])  # Of 32; ceil(9.6).
def test_visual_fractions_from_the_config(key, count, of_what, cases):
  for fraction, want in cases.items():
    assert count(_visual_config(**{key: fraction})) == want
  for off in (1.0, 0, None):  # All frames.
    assert count(_visual_config(**{key: off})) is None
  for bad in (1.5, -0.25, "half", True, False):
    with pytest.raises(errors.UserFacingError,
                       match=rf"visual.{key} must be a fraction in "
                       rf"\(0, 1\] of {of_what} .* got " + repr(bad)):
      count(_visual_config(**{key: bad}))


@pytest.mark.slow
def test_frame_budget_steps_ran_and_train_like_full_steps(
    tiny_run, av_digits_data_dir, manual_dir, tmp_path):
  workdir, _ = tiny_run
  for stage in ("visual", "generator"):
    with open(workdir / stage / "metrics.jsonl") as f:
      logged = [json.loads(line) for line in f]
    # Logged every 2 steps; the tiny data's batches fit the budget.
    assert [record["fast_step_fallbacks"] for record in logged] == [0, 0, 0]
  with open(workdir / "acoustic" / "metrics.jsonl") as f:
    assert "fast_step_fallbacks" not in json.loads(f.readline())
  # Without the budget, the visual stage trains to the same params.
  trainer.train_and_evaluate(
      tiny_config(**{"visual.frame_budget": 0.0}), str(tmp_path),
      stages=["visual"], manual_dir=str(manual_dir),
      data_dir=str(av_digits_data_dir))
  full_steps = jax.tree_util.tree_leaves_with_path(
      load_export(tmp_path, "visual"))
  budget_steps = dict(jax.tree_util.tree_leaves_with_path(
      load_export(workdir, "visual")))
  for path, want in full_steps:
    np.testing.assert_allclose(budget_steps[path], want, rtol=1e-4,
                               atol=1e-5, err_msg=str(path))


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_joint_encoders_step_at_the_scaled_learning_rate(scale):
  config = tiny_config(**{
      "generator.train.encoder_learning_rate_scale": scale})
  train_config = optimizers_lib.stage_train_config(config, "generator")
  encoder_train = generator_stage.encoder_train_config(train_config)
  assert encoder_train.learning_rate == pytest.approx(
      train_config.learning_rate * scale)
  params = {"w": np.ones(3, np.float32)}
  grads = {"w": np.array([2.0, -0.5, 1e-3], np.float32)}
  updates = {}
  for name, tc in (("generator", train_config), ("encoder", encoder_train)):
    optimizer = optimizers_lib.optimizer_from(tc)
    updates[name], _ = optimizer.update(grads, optimizer.init(params), params)
  # Adam's first update is -lr * g / (|g| + eps): the ratio is the scale.
  np.testing.assert_allclose(np.asarray(updates["encoder"]["w"]),
                             scale * np.asarray(updates["generator"]["w"]),
                             rtol=1e-6)
  assert np.all(np.asarray(updates["generator"]["w"]) != 0)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_encoder_learning_rate_scale_is_named(scale):
  config = tiny_config(**{
      "generator.train.encoder_learning_rate_scale": scale})
  train_config = optimizers_lib.stage_train_config(config, "generator")
  with pytest.raises(errors.UserFacingError,
                     match="encoder_learning_rate_scale must be a positive"):
    generator_stage.encoder_train_config(train_config)


def test_vocoder_critic_waits_for_its_start_step(
    tiny_run, av_digits_data_dir, manual_dir, tmp_path):
  # Before adversarial.start_step the stage runs its warm-up step,
  # reconstruction only (critic untouched, its metrics 0); from it on the
  # full step, where the critic trains and the adversarial term is live.
  workdir, _ = tiny_run
  config = tiny_config(**{
      "generator.discriminator": dict(
          kind="vocoder", periods=(2, 3), period_channels=(2, 4),
          fft_sizes=(128,), spectrogram_channels=2),
      "generator.adversarial.loss": "lsgan",
      "generator.adversarial.start_step": 1,
      "generator.train.num_steps": 2})
  spec = _generator_spec(config, workdir, tmp_path, manual_dir,
                         av_digits_data_dir)
  assert spec.warm_up_steps == 1
  state = spec.init_fn()
  batch = next(iter(spec.make_batches(0)))
  first, metrics = jax.jit(spec.warm_up_step_fn)(state, batch,
                                                 jax.random.PRNGKey(0))
  assert_trees_equal(first["params"]["discriminator"],
                     state["params"]["discriminator"])
  for name in ("d_loss", "d_real", "d_fake", "adversarial",
               "feature_matching"):
    assert float(metrics[name]) == 0.0
  second, metrics = jax.jit(spec.step_fn)(first, batch,
                                          jax.random.PRNGKey(1))
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))),
      second["params"]["discriminator"], first["params"]["discriminator"]))
  assert max(moved) > 0
  for name in ("d_loss", "adversarial", "feature_matching"):
    assert float(metrics[name]) > 0.0


def test_posterior_noise_starts_as_the_prior_trains_and_is_not_exported(
    tiny_run, av_digits_data_dir, manual_dir, tmp_path):
  # q(z | target) starts as N(0, 1) (zero-initialised statistics), so the
  # first step equals the step without the posterior; it then moves, its KL
  # is logged and weighted, and the export holds the generator alone.
  workdir, _ = tiny_run
  settings = {"generator.loss_weights.adversarial": 0.0,
              "generator.loss_weights.feature_matching": 0.0,
              "generator.train.num_steps": 3}
  plain = _generator_spec(tiny_config(**settings), workdir,
                          tmp_path / "plain", manual_dir, av_digits_data_dir)
  spec = _generator_spec(
      tiny_config(**settings, **{"generator.posterior.enabled": True,
                                 "generator.loss_weights.kl": 0.1}),
      workdir, tmp_path / "posterior", manual_dir, av_digits_data_dir)
  batch = next(iter(spec.make_batches(0)))
  rng = jax.random.PRNGKey(0)
  plain_state, plain_metrics = jax.jit(plain.step_fn)(plain.init_fn(), batch,
                                                      rng)
  state = spec.init_fn()
  assert set(state["params"]) == set(plain_state["params"]) | {"posterior"}
  step = jax.jit(spec.step_fn)
  first, metrics = step(state, batch, rng)
  assert float(metrics["stft"]) == float(plain_metrics["stft"])
  assert float(metrics["kl"]) == 0.0
  assert_trees_equal(first["params"]["generator"],
                     plain_state["params"]["generator"])
  moved = jax.tree.leaves(jax.tree.map(
      lambda a, b: np.max(np.abs(np.asarray(a) - np.asarray(b))),
      first["params"]["posterior"], state["params"]["posterior"]))
  assert max(moved) > 0
  second, metrics = step(first, batch, jax.random.PRNGKey(1))
  assert float(metrics["kl"]) > 0.0
  assert np.isclose(float(metrics["loss"]),
                    float(metrics["stft"]) + 0.1 * float(metrics["kl"]),
                    rtol=1e-5)
  assert set(spec.export_fn(second)) == {"generator", "acoustic", "visual"}


def test_posterior_run_exports_and_checkpoint_exports_leave_it_out(
    tiny_run, av_digits_data_dir, manual_dir, tmp_path):
  workdir, _ = tiny_run
  run = tmp_path / "run"
  for stage in ("acoustic", "visual"):
    shutil.copytree(workdir / stage, run / stage)
  config = tiny_config(**{"generator.posterior.enabled": True,
                          "generator.loss_weights.kl": 0.1})
  trainer.train_and_evaluate(config, str(run), stages=["generator"],
                             manual_dir=str(manual_dir),
                             data_dir=str(av_digits_data_dir))
  checkpoints = run / "generator" / "checkpoints"
  step = max(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
  assert "posterior" in checkpointing.load_step(str(checkpoints),
                                                step)["params"]
  assert "posterior" not in load_export(run, "generator")
  assert "posterior" not in export.export_checkpoint(
      str(run), "generator", step, "last", str(tmp_path / "step"))


def test_posterior_without_generator_noise_is_named():
  config = tiny_config(**{"generator.posterior.enabled": True,
                          "generator.model.noise_features": 0})
  with pytest.raises(errors.UserFacingError,
                     match="posterior.enabled needs generator.model.noise"):
    generator_stage.posterior_model(config)
