"""The levers past one model, measured after the fact on a study's finished runs: a left-right flip view
(`evaluate.tta: [flip]`), ensembles of 2 up to all of an arm's seeds (`tltf ensemble`), and ensembles of two arms'
runs.

Binary tasks only. For each grid point of the study folder and each arm: each single run's test AUC; the same
run's model with a flip view folded in (`with_test_time_augmentation`, evaluated on the run's own test images);
for each seed s and size k, the mean of the probabilities of the k seeds from s on (wrapping), from the runs'
predictions.csv; and for two arms (`--pair A B`) the mean of the two arms' runs of the same seed, and the
same mean over each run's flip view. Each lever is
paired with the single run of seed s on the same test images (DeLong), and summarised over seeds by the mean
difference and its 95% t-interval. A lever's extra cost is in its row: views multiply inference, ensembles
multiply training and inference. Nothing is chosen here: every lever is fixed in advance, so reading the test
split for all of them is one reading.

    python benchmarks/levers.py STUDY_DIR [--arms A ...] [--pair A B] [--no-tta] [--json FILE]
"""

import argparse
import csv
import functools
import json
import math
from pathlib import Path

import numpy as np

import tltf  # noqa: F401  (TensorFlow imported quietly; tltf's layers registered)
from tltf.data.sources import load_splits
from tltf.evaluate.compare import read_predictions
from tltf.evaluate.evaluator import predict_probabilities
from tltf.evaluate.inference_views import with_test_time_augmentation
from tltf.evaluate.metrics import roc_auc
from tltf.evaluate.paired import delong_test
from tltf.run_dir import load_run_model, load_run_recipe
from tltf.study.statistics import mean_interval


def finished_runs(study_dir: Path) -> list[dict]:
    import yaml

    with open(study_dir / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    grid = list((yaml.safe_load((study_dir / "study.yaml").read_text()).get("grid") or {}))
    for row in rows:
        row["point"] = tuple((key, row[key]) for key in grid if row.get(key) not in (None, ""))
        row["path"] = study_dir / "runs" / row["run"]
        row["seed"] = int(row["seed"])
    return rows


@functools.cache
def flip_scores(path: Path) -> np.ndarray:
    """The run's test scores with a left-right flip view folded into its model (once per run: `--pair` asks
    again for runs the arms' own rows already scored)."""
    recipe = load_run_recipe(path)
    test = load_splits(recipe.data, seed=recipe.train.seed).test
    return predict_probabilities(with_test_time_augmentation(load_run_model(path), ["flip"]), test.images)


def paired(labels, singles: dict, levers: dict) -> dict:
    """Per seed: DeLong of lever[s] against single[s]; the mean difference over seeds with its t-interval."""
    per_seed = {}
    for seed, scores in levers.items():
        result = delong_test(labels, singles[seed], scores)
        per_seed[seed] = {"single": result.auc_a, "lever": result.auc_b, "difference": result.difference,
                          "p": result.p}
    mean, low, high = mean_interval([entry["difference"] for entry in per_seed.values()])
    aucs = [entry["lever"] for entry in per_seed.values()]
    return {"per_seed": per_seed, "auc_mean": float(np.mean(aucs)), "difference_mean": mean, "ci": [low, high]}


def levers_of_arm(rows: list[dict], tta: bool) -> dict:
    """Lever name → `paired(...)` for one arm at one grid point (seeds in order)."""
    rows = sorted(rows, key=lambda row: row["seed"])
    seeds = [row["seed"] for row in rows]
    labels, _ = read_predictions(rows[0]["path"])
    singles = {row["seed"]: read_predictions(row["path"])[1] for row in rows}
    result = {"single": {"auc_mean": float(np.mean([roc_auc(labels, s) for s in singles.values()])),
                         "seeds": seeds}}
    if tta:
        result["flip view"] = paired(labels, singles, {row["seed"]: flip_scores(row["path"]) for row in rows})
    for size in range(2, len(seeds) + 1):
        ensembles = {seeds[i]: np.mean([singles[seeds[(i + k) % len(seeds)]] for k in range(size)], axis=0)
                     for i in range(len(seeds))}
        result[f"ensemble of {size} seeds"] = paired(labels, singles, ensembles)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--arms", nargs="*", default=None, help="Arms to measure (default: all).")
    parser.add_argument("--pair", nargs=2, default=None, metavar=("A", "B"),
                        help="Also the ensemble of arm A's and arm B's runs of the same seed, against A's (and, unless "
                             "--no-tta, the same ensemble of the two runs' flip views).")
    parser.add_argument("--no-tta", action="store_true", help="Skip the flip view (it loads every model).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = finished_runs(args.study_dir)
    report = []
    for point in dict.fromkeys(row["point"] for row in rows):
        at_point = [row for row in rows if row["point"] == point]
        for arm in dict.fromkeys(row["arm"] for row in at_point):
            if args.arms and arm not in args.arms:
                continue
            arm_rows = [row for row in at_point if row["arm"] == arm]
            if len(arm_rows) >= 2:
                report.append({"point": dict(point), "arm": arm, "levers": levers_of_arm(arm_rows, not args.no_tta)})
        if args.pair:
            report += pair_entry(point, at_point, *args.pair, tta=not args.no_tta)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")


def pair_entry(point, rows: list[dict], first: str, second: str, tta: bool = False) -> list[dict]:
    """Arm `first`'s runs against the mean of `first`'s and `second`'s runs of the same seed (and, with `tta`,
    the same mean over each run's flip view too)."""
    by_arm = {arm: {row["seed"]: row for row in rows if row["arm"] == arm} for arm in (first, second)}
    seeds = sorted(set(by_arm[first]) & set(by_arm[second]))
    if not seeds:
        return []
    labels, _ = read_predictions(by_arm[first][seeds[0]]["path"])
    singles = {seed: read_predictions(by_arm[first][seed]["path"])[1] for seed in seeds}
    both = {seed: (singles[seed] + read_predictions(by_arm[second][seed]["path"])[1]) / 2 for seed in seeds}
    levers = {"single": {"auc_mean": float(np.mean([roc_auc(labels, s) for s in singles.values()])), "seeds": seeds},
              f"ensemble with {second} (same seed)": paired(labels, singles, both)}
    if tta:
        flipped = {seed: (flip_scores(by_arm[first][seed]["path"]) + flip_scores(by_arm[second][seed]["path"])) / 2
                   for seed in seeds}
        levers[f"ensemble with {second} (same seed), each with its flip view"] = paired(labels, singles, flipped)
    return [{"point": dict(point), "arm": first, "levers": levers}]


def print_table(report: list[dict]) -> None:
    print("| grid point | arm | lever | seeds | test AUC, mean | − single, mean [95% CI] | per seed: difference (p) |")
    print("|---|---|---|---|---|---|---|")
    for entry in report:
        point = ", ".join(f"{k}={v}" for k, v in entry["point"].items())
        single = entry["levers"]["single"]
        print(f"| {point} | {entry['arm']} | single run | {single['seeds']} | {single['auc_mean']:.4f} | | |")
        for name, lever in entry["levers"].items():
            if name == "single":
                continue
            low, high = lever["ci"]
            interval = "" if math.isnan(low) else f" [{low:+.4f}, {high:+.4f}]"
            seeds = ", ".join(f"{seed}: {e['difference']:+.4f} ({e['p']:.2g})" for seed, e in lever["per_seed"].items())
            print(f"| {point} | {entry['arm']} | {name} | {list(lever['per_seed'])} | {lever['auc_mean']:.4f} | "
                  f"{lever['difference_mean']:+.4f}{interval} | {seeds} |")


if __name__ == "__main__":
    main()
