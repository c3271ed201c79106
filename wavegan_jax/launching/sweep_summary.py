"""The summary of a sweep: every run's final metrics in one table.

Each run contributes its status, its overrides and the numbers it wrote:
every <workdir>/<stage>/final_metrics.json as `<stage>/<metric>` columns and,
where present, <workdir>/eval/metrics.json as `eval/<metric>` (nested dicts
flattened with '/'). `write_summary` writes them to <root>/summary.csv (all
columns) and <root>/summary.md (a markdown table sorted by one metric).
"""

import csv
import glob
import json
import math
import os
from typing import Optional, Sequence

EVAL_METRICS = os.path.join("eval", "metrics.json")
FINAL_METRICS = "final_metrics.json"
# Metrics where larger is better; the default sort puts their best first.
_HIGHER_IS_BETTER = ("accuracy", "inception", "pesq", "stoi")


def _flatten(tree: dict, prefix: str) -> dict:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}/{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, name))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
      flat[name] = value
  return flat


def _read_json(path: str) -> Optional[dict]:
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None


def run_metrics(workdir: str, stage_order: Sequence[str] = ()) -> dict:
  """The numbers a run wrote, as {'<stage>/<metric>' or 'eval/<metric>'}.

  Args:
    workdir: the run's workdir.
    stage_order: stages in training order (others follow alphabetically).

  Returns:
    An ordered dict of column -> number: eval metrics first, then each
    stage's final metrics in stage order.
  """
  def stage_rank(path):
    stage = os.path.basename(os.path.dirname(path))
    order = list(stage_order)
    return (order.index(stage) if stage in order else len(order), stage)

  metrics = _flatten(_read_json(os.path.join(workdir, EVAL_METRICS)) or {},
                     "eval")
  paths = glob.glob(os.path.join(glob.escape(workdir), "*", FINAL_METRICS))
  for path in sorted(paths, key=stage_rank):
    stage = os.path.basename(os.path.dirname(path))
    if stage != "eval":
      metrics.update(_flatten(_read_json(path) or {}, stage))
  return metrics


def default_sort_metric(columns: Sequence[str]) -> Optional[str]:
  """The first eval metric, else the last stage's loss, else None."""
  for column in columns:
    if column.startswith("eval/"):
      return column
  losses = [column for column in columns if column.endswith("/loss")]
  return losses[-1] if losses else None


def _sort_rows(rows: list, sort_by: str) -> list:
  """Rows with the metric first (best first), then rows without it."""
  descending = sort_by.startswith("-")
  metric = sort_by.lstrip("+-")
  if sort_by[0] not in "+-":
    descending = any(word in metric for word in _HIGHER_IS_BETTER)

  def key(row):
    value = row.get(metric)
    if not isinstance(value, (int, float)) or math.isnan(value):
      return (1, 0.0)
    return (0, -value if descending else value)

  return sorted(rows, key=key)


def _markdown_cell(value) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value).replace("|", "\\|")


def write_summary(root: str, runs: Sequence, results: dict,
                  stage_order: Sequence[str] = (),
                  sort_by: Optional[str] = None) -> dict:
  """Writes root/summary.csv and root/summary.md for the runs of a sweep.

  Args:
    root: the sweep's --workdir_root.
    runs: the sweeps.Run list, in grid order.
    results: {run name: processes.RunResult}.
    stage_order: the experiment's stages in training order.
    sort_by: the metric column of the markdown order; a leading '-' sorts
      descending, '+' ascending; without a sign, metrics named like accuracy,
      inception score, PESQ or STOI go descending, others ascending. Default:
      default_sort_metric.

  Returns:
    {'csv': path, 'markdown': path, 'sort_by': the metric used (or None),
     'rows': the rows as dicts, in markdown order}.
  """
  keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
  rows, metric_columns = [], {}
  for run in runs:
    result = results[run.name]
    metrics = run_metrics(run.workdir, stage_order)
    metric_columns.update(dict.fromkeys(metrics))
    rows.append({"run": run.name, "status": result.status,
                 "exit_code": result.returncode, **run.overrides, **metrics})
  metric_columns = list(metric_columns)
  columns = ["run", "status", "exit_code", *keys, *metric_columns]

  sort_by = sort_by or default_sort_metric(metric_columns)
  if sort_by and sort_by.lstrip("+-") not in metric_columns:
    print(f"summary: no run has the metric {sort_by.lstrip('+-')!r} "
          f"(metrics: {', '.join(metric_columns) or 'none'}); rows stay in "
          "grid order")
    sort_by = None
  if sort_by:
    rows = _sort_rows(rows, sort_by)

  csv_path = os.path.join(root, "summary.csv")
  with open(csv_path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)

  metric = sort_by.lstrip("+-") if sort_by else None
  md_columns = ["run", "status", *keys]
  if metric:
    md_columns.append(metric)
  md_columns += [c for c in metric_columns if c != metric]
  lines = [f"Sorted by {metric}." if metric else "In grid order.", "",
           "| " + " | ".join(md_columns) + " |",
           "|" + "---|" * len(md_columns)]
  for row in rows:
    status = row["status"]
    if status == "failed":
      status = f"failed (exit {row['exit_code']})"
    cells = [status if c == "status" else row.get(c) for c in md_columns]
    lines.append("| " + " | ".join(_markdown_cell(c) for c in cells) + " |")
  md_path = os.path.join(root, "summary.md")
  with open(md_path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return {"csv": csv_path, "markdown": md_path, "sort_by": metric,
          "rows": rows}
