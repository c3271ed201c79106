"""launch/local_cluster.py: av_digits:tiny (acoustic stage) over 2 processes.

Each process reads its own rows of the same global batch, so the two-process
run must train like a single-process one: the exported params agree to float
summation order. (A failing process stopping the others is tested on toy
commands in launching_test.py.)
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import av_digits as av_digits_config
from wavegan_jax.training import checkpointing
from wavegan_jax.training import trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_STEPS = 4


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, av_digits_data_dir, manual_dir):
  cluster_workdir = tmp_path / "two_processes"
  log_dir = tmp_path / "logs"
  cluster = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, "launch/local_cluster.py", "--num_processes=2",
       f"--logs_dir={log_dir}", "--", "launch/train.py",
       "--config=experiments/av_digits.py:tiny", f"--workdir={cluster_workdir}",
       "--stages=acoustic", f"--config.acoustic.train.num_steps={NUM_STEPS}",
       f"--data_dir={av_digits_data_dir}", f"--manual_dir={manual_dir}"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      start_new_session=True)
  try:
    # The single-process reference trains here while the cluster runs.
    config = av_digits_config.get_config("tiny").unlock()
    config.acoustic.train.num_steps = NUM_STEPS
    single_workdir = tmp_path / "one_process"
    trainer.train_and_evaluate(config.lock(), str(single_workdir),
                               stages=["acoustic"], manual_dir=str(manual_dir),
                               data_dir=str(av_digits_data_dir))
    output, _ = cluster.communicate(timeout=600)
  finally:
    if cluster.poll() is None:
      os.killpg(cluster.pid, 9)
      cluster.wait()

  assert cluster.returncode == 0, output
  assert "local cluster: 2 processes, coordinator 127.0.0.1:" in output
  assert "stage acoustic: done" in output  # Process 0, streamed.
  assert "stage acoustic: done" in (log_dir / "process_1.log").read_text()
  single = checkpointing.load_params(
      checkpointing.export_path(str(single_workdir), "acoustic"))
  double = checkpointing.load_params(
      checkpointing.export_path(str(cluster_workdir), "acoustic"))
  single_leaves, single_tree = jax.tree_util.tree_flatten(single)
  double_leaves, double_tree = jax.tree_util.tree_flatten(double)
  assert single_tree == double_tree
  for a, b in zip(single_leaves, double_leaves):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5,
                               atol=1e-5)
  # Both trained NUM_STEPS steps to the same loss.
  single_final = json.loads(
      (single_workdir / "acoustic" / "final_metrics.json").read_text())
  double_final = json.loads(
      (cluster_workdir / "acoustic" / "final_metrics.json").read_text())
  assert single_final["step"] == double_final["step"] == NUM_STEPS
  np.testing.assert_allclose(double_final["loss"], single_final["loss"],
                             rtol=1e-5)
