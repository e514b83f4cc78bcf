"""Choosing `train.stop: auto`'s rule from full-budget runs, and checking it against runs that stopped.

Reads a finished `tltf study studies/stop-rule.yaml` folder. Its `full_budget` arm ran every epoch of
`epochs: auto` in deterministic mode, so a run with a stop rule is that run cut short: the same epochs up to
its stop, and the best of those delivered. For each candidate rule (patience as a fraction of the epochs, and
a least patience in optimizer steps) this replays every full run's validation AUCs and prints, over the runs,
the share of the budget saved and how much validation AUC the delivered epoch gives up against the full run's
best (validation only: the rule is chosen without the test split). With `--check`, the runs of the study's
other arms (e.g. `stop_auto`, made with the chosen rule) are paired with the full run of the same fraction and
seed: epochs, wall time and test AUC.

    python benchmarks/stop_rule.py STUDY_DIR [--check]
"""

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

PATIENCES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
MIN_STEPS = (0, 100, 200, 400)


def read_run(path: Path) -> dict:
    with open(path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    metrics = json.loads((path / "metrics.json").read_text())
    recipe_text = (path / "recipe.yaml").read_text()
    warmup = 2 if "warmup_then_finetune" in recipe_text else 0  # the shipped recipe's head warm-up epochs
    return {"val_auc": [float(row["val_auc"]) for row in rows], "metrics": metrics, "warmup": warmup,
            "seconds": json.loads((path / "timing.json").read_text())["wall_seconds"]}


def replay(run: dict, patience: float, min_steps: int, steps_per_epoch: int) -> tuple[int, int]:
    """`(epochs run, delivered epoch)` (1-based) had the run stopped by the rule in its last phase."""
    values, start = run["val_auc"], run["warmup"]
    epochs = len(values)
    wait_limit = max(1, math.ceil(patience * epochs), math.ceil(min_steps / steps_per_epoch))
    best, wait = None, 0
    for epoch in range(start, epochs):
        wait += 1
        if best is None or values[epoch] > best:
            best, wait = values[epoch], 0
        elif wait >= wait_limit:
            epochs = epoch + 1
            break
    delivered = max(range(epochs), key=lambda e: (values[e], -e)) + 1
    return epochs, delivered


def runs_of(study: Path) -> dict:
    """`{(arm, fraction, seed): run}` of the study's finished runs."""
    found = {}
    for path in sorted((study / "runs").iterdir()):
        if path.suffix == ".partial" or not (path / "metrics.json").is_file():
            continue
        parts = dict(part.split("=") for part in path.name.split("-")[1:] if "=" in part)
        found[(path.name.split("-")[0], float(parts["train_fraction"]), int(parts["seed"]))] = read_run(path)
    return found


def choose(full: dict) -> None:
    print("rule (patience, least steps) | budget saved: mean, min | val AUC given up: mean, max | best kept")
    for patience in PATIENCES:
        for min_steps in MIN_STEPS:
            saved, lost, kept = [], [], 0
            for run in full.values():
                spe = run["metrics"]["budget"]["steps_planned"] // run["metrics"]["budget"]["epochs_planned"]
                epochs, delivered = replay(run, patience, min_steps, spe)
                values = run["val_auc"]
                saved.append(1 - epochs / len(values))
                lost.append(max(values) - values[delivered - 1])
                kept += delivered == run["metrics"]["best_epoch"]
            print(f"  {patience:.2f}, {min_steps:3d} | {statistics.mean(saved):.0%}, {min(saved):.0%} | "
                  f"{statistics.mean(lost):.4f}, {max(lost):.4f} | {kept}/{len(full)}")


def check(found: dict) -> None:
    full = {key[1:]: run for key, run in found.items() if key[0] == "full_budget"}
    for (arm, fraction, seed), run in sorted(found.items()):
        if arm == "full_budget" or (fraction, seed) not in full:
            continue
        reference = full[(fraction, seed)]
        budget, ratio = run["metrics"]["budget"], run["seconds"] / reference["seconds"]
        auc, reference_auc = run["metrics"]["test"]["auc"], reference["metrics"]["test"]["auc"]
        print(f"  {arm} {fraction:g} seed {seed}: {budget['epochs_run']}/{budget['epochs_planned']} epochs, "
              f"{run['seconds']:.0f} s against {reference['seconds']:.0f} s ({ratio:.2f}×), test AUC {auc:.4f} "
              f"against {reference_auc:.4f} ({auc - reference_auc:+.4f}), best epoch {run['metrics']['best_epoch']} "
              f"/ {reference['metrics']['best_epoch']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path)
    parser.add_argument("--check", action="store_true", help="pair the other arms' runs with the full ones")
    args = parser.parse_args()
    found = runs_of(args.study)
    full = {key: run for key, run in found.items() if key[0] == "full_budget"}
    for fraction in sorted({key[1] for key in full}):
        runs = [run for key, run in full.items() if key[1] == fraction]
        print(f"fraction {fraction:g}: {len(runs)} full runs of {len(runs[0]['val_auc'])} epochs, best epochs "
              f"{[run['metrics']['best_epoch'] for run in runs]}")
    choose(full)
    if args.check:
        check(found)


if __name__ == "__main__":
    main()
