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


def grid_points(runs: list) -> list[tuple]:
    return list(dict.fromkeys(run.point for run in runs))


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
