"""A study's results table: one row per run, from the run directories themselves.

Everything here is read back from `<study>/runs/<run>/` (metrics.json,
timing.json, predictions.csv), so a study interrupted and continued, or
copied from a cluster, gives the same table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tltf.run import TIMING_FILE

RUNS_FOLDER = "runs"


def run_dir(study_dir: Path, run) -> Path:
    return Path(study_dir) / RUNS_FOLDER / run.name


def is_finished(path: Path) -> bool:
    """A finished run: its folder exists (it appears only when complete) with metrics.json."""
    return (Path(path) / "metrics.json").is_file()


def collect_results(study_dir: Path, runs: list) -> list[dict]:
    """One dict per finished run: `run`, `arm`, each grid key, `seed`, `wall_seconds`, then every scalar metric
    (`val.auc`, `test.auc`, `test.auc_ci_low`, ..., `best_epoch`, `health.status`)."""
    rows = []
    for run in runs:
        path = run_dir(study_dir, run)
        if not is_finished(path):
            continue
        row = {"run": run.name, "arm": run.arm, **dict(run.point), "seed": run.seed}
        timing = path / TIMING_FILE
        row["wall_seconds"] = json.loads(timing.read_text())["wall_seconds"] if timing.is_file() else None
        row.update(flatten_metrics(json.loads((path / "metrics.json").read_text())))
        rows.append(row)
    return rows


def flatten_metrics(metrics: dict, prefix: str = "") -> dict:
    """Scalars under dotted keys (with `test.split`: `val (no test split)` when the data had none); `[low, high]`
    intervals as `_low`/`_high` (none without a bootstrap); other lists (confusion) left out."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (list, tuple)) or key.endswith("_ci"):
            if key.endswith("_ci") and value and len(value) == 2:
                flat[f"{name}_low"], flat[f"{name}_high"] = value
        else:
            flat[name] = value
    return flat


def write_results(path: Path, rows: list[dict]) -> None:
    """A CSV of dicts (`results.csv`, `ensembles.csv`): the columns of every row, in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
