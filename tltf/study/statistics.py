"""A study's paired statistics: each arm against the reference arm, at each grid point.

Two levels, both paired:
- per seed, the two runs scored the same test images: DeLong's test (binary) or a paired bootstrap
  (multiclass), as `tltf compare` does;
- across seeds, the mean of those per-seed differences with a 95% t-interval: what another seed
  would likely give, which a single pair's CI (about the test images only) cannot say.
"""

from __future__ import annotations

import math

import numpy as np

from tltf.evaluate.compare import compare_runs


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """`(mean, low, high)`: a t-interval of the mean; low and high are nan for fewer than two values."""
    from scipy import stats

    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def target_differences(rows: list[dict], runs: list) -> list[dict]:
    """Adapted runs' target accuracy against source-only's, seed by seed, at each grid point.

    An adaptation study's arms are methods; its question is the target, which the source test AUC above cannot
    answer. A row counts when it has `target.accuracy` (its target has labels). The source-only baseline of a
    seed is the run's own `target_source_only` (`compare_source_only`) or, without one, that of another run at
    the same grid point and seed (AdaBN's is the same model before AdaBN; in deterministic mode every arm's
    baseline is the same training). Each dict: `point`, `arm` (`source_only` for the baseline row), `seeds`,
    `accuracy` and `auc` (mean, sd), `per_seed` (`seed`, `accuracy`, `source_only`), and for adapted arms
    `mean_difference` with `ci` (95% t-interval over seeds; nan with one seed).
    """
    table = []
    for point in grid_points(runs):
        here = [row for row in rows if in_point(row, point)]
        baselines = {}  # seed → the first row there that carries a source-only baseline
        for row in here:
            if "target_source_only.accuracy" in row:
                baselines.setdefault(row["seed"], row)
        adapted = [row for row in here if "target.accuracy" in row]
        seeds = sorted({row["seed"] for row in adapted} & set(baselines))
        if seeds:
            table.append(_target_entry(point, "source_only", [baselines[seed] for seed in seeds],
                                       "target_source_only"))
        for arm in dict.fromkeys(run.arm for run in runs):
            members = [row for row in adapted if row["arm"] == arm]
            if not members:
                continue
            entry = _target_entry(point, arm, members, "target")
            entry["per_seed"] = [{"seed": row["seed"], "accuracy": row["target.accuracy"],
                                  "source_only": _baseline_accuracy(row, baselines)} for row in members]
            differences = [s["accuracy"] - s["source_only"] for s in entry["per_seed"] if s["source_only"] is not None]
            if differences:
                mean, low, high = mean_interval(differences)
                entry.update(mean_difference=mean, ci=[low, high], paired_seeds=len(differences))
            table.append(entry)
    return table


def _baseline_accuracy(row: dict, baselines: dict):
    """The run's own source-only target accuracy, else that of another run at its seed, else None."""
    own = row.get("target_source_only.accuracy")
    return own if own is not None else baselines.get(row["seed"], {}).get("target_source_only.accuracy")


def _target_entry(point: tuple, arm: str, rows: list[dict], prefix: str) -> dict:
    accuracy = np.array([row[f"{prefix}.accuracy"] for row in rows], np.float64)
    auc = np.array([row.get(f"{prefix}.auc", math.nan) for row in rows], np.float64)
    return {"point": dict(point), "arm": arm, "seeds": [row["seed"] for row in rows],
            "accuracy": [float(accuracy.mean()), _spread(accuracy)], "auc": [float(auc.mean()), _spread(auc)]}


def _spread(values) -> float:
    """The sample standard deviation; NaN for one value."""
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def grid_points(runs: list) -> list[tuple]:
    return list(dict.fromkeys(run.point for run in runs))


def in_point(row: dict, point: tuple) -> bool:
    """Whether a results row was made at this grid point (`((key, value), ...)`)."""
    return all(row.get(key) == value for key, value in point)


def paired_differences(study_dir, runs: list, reference: str) -> list[dict]:
    """For each grid point and each arm but `reference`: the per-seed paired tests and their mean over seeds.

    Only seeds where both runs finished count. Each dict: `point` (grid key → value), `arm`, `reference`,
    `per_seed` (`seed`, `difference`, `ci`, `p`, `method`), `mean_difference`, `ci` (95% over seeds; nan with
    one seed), `seeds`.
    """
    from tltf.study.results import is_finished, run_dir

    finished = {(run.arm, run.point, run.seed): run_dir(study_dir, run) for run in runs
                if is_finished(run_dir(study_dir, run))}
    arms = list(dict.fromkeys(run.arm for run in runs))
    seeds = list(dict.fromkeys(run.seed for run in runs))
    table = []
    for point in grid_points(runs):
        for arm in arms:
            if arm == reference:
                continue
            per_seed = []
            for seed in seeds:
                pair = (finished.get((reference, point, seed)), finished.get((arm, point, seed)))
                if None in pair:
                    continue
                (result,) = compare_runs(list(pair))
                per_seed.append({"seed": seed, "difference": result["difference"], "ci": result["ci"],
                                 "p": result["p"], "method": result["method"]})
            if not per_seed:
                continue
            mean, low, high = mean_interval([entry["difference"] for entry in per_seed])
            table.append({"point": dict(point), "arm": arm, "reference": reference, "per_seed": per_seed,
                          "mean_difference": mean, "ci": [low, high], "seeds": len(per_seed)})
    return table
