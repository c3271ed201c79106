"""Executes experiments/colab.ipynb top to bottom on the CPU (nbclient).

The kernel is this interpreter: a kernel spec written to a temp dir (found
through $JUPYTER_PATH) so that a fresh CI venv needs no registered kernel.
"""

import json
import pathlib
import sys

import nbclient
import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "experiments" / "colab.ipynb"
KERNEL_NAME = "wavegan-test-python"


@pytest.fixture
def kernel_spec(tmp_path, monkeypatch):
  spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
               "{connection_file}"],
      "display_name": "wavegan test", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
  return KERNEL_NAME


def _outputs_text(cell) -> str:
  parts = []
  for output in cell.get("outputs", []):
    parts.append(output.get("text", ""))
    parts.extend(str(v) for k, v in output.get("data", {}).items()
                 if k == "text/plain")
  return "".join(parts)


def test_notebook_is_valid_and_guards_its_install():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  install = notebook.cells[1].source
  assert 'find_spec("wavegan_jax") is None' in install
  assert "pip install" in install
  assert all(not cell.get("outputs") for cell in notebook.cells
             if cell.cell_type == "code"), "commit the notebook without outputs"


@pytest.mark.slow
def test_notebook_executes(kernel_spec, manual_dir, av_digits_data_dir,
                           monkeypatch, tmp_path):
  monkeypatch.setenv("WAVEGAN_MANUAL_DIR", str(manual_dir))
  monkeypatch.setenv("WAVEGAN_COLAB_DATA_DIR", str(av_digits_data_dir))
  monkeypatch.setenv("WAVEGAN_COLAB_STEPS", "2")
  monkeypatch.setenv("TMPDIR", str(tmp_path))
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, kernel_name=kernel_spec, timeout=600,
      resources={"metadata": {"path": str(REPO / "experiments")}})
  client.execute()

  code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
  # The install cell found wavegan_jax and did nothing.
  assert not code_cells[0].outputs
  setup, train, generate, _, _, evaluation = (
      _outputs_text(cell) for cell in code_cells[1:])
  assert f"writing under: {tmp_path}" in setup
  assert f"raw data: {manual_dir}" in setup
  for stage in ("acoustic", "visual", "generator"):
    assert f"stage {stage}: done" in train
  assert "generated (8192,)" in generate
  # Three audio players and the images of the frames and the plots.
  kinds = [kind for cell in code_cells[3:6] for output in cell.outputs
           for kind in output.get("data", {})]
  assert kinds.count("text/html") == 3
  assert kinds.count("image/png") == 2
  workdir = next(tmp_path.glob("wavegan_colab_*"))
  if (REPO / "launch" / "evaluate.py").exists():
    metrics = json.loads((workdir / "av_digits_tiny" / "eval" /
                          "metrics.json").read_text())
    assert 0.0 <= metrics["digit_accuracy"] <= 1.0
    assert "digit_accuracy" in evaluation
  else:
    assert evaluation == ("launch/evaluate.py is not in this checkout: "
                          "skipping the evaluation.\n")
  for stage in ("acoustic", "visual", "generator"):
    final = json.loads((workdir / "av_digits_tiny" / stage /
                        "final_metrics.json").read_text())
    assert final["step"] == 2
