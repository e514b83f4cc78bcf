"""Which validation figure picks the run with the better test AUC: validation AUC or validation log-loss?

Where every candidate's validation AUC is near 0.99 (PneumoniaMNIST on all its labels), AUC has little room left
to tell candidates apart, and a proper score such as the log-loss might. This reads finished study folders and,
within each grid point, takes every pair of runs (arms and seeds alike: the candidates a search's confirmation or
an ensemble's member selection chooses among). For each pair whose test AUCs differ by more than `--margin`, it
asks whether each criterion prefers the run with the higher test AUC: the higher validation AUC (metrics.json), or
the lower validation loss at the delivered epoch (history.csv: the training loss, cross-entropy with the recipe's
label smoothing, on the validation split). The same at the level of arms: each arm's mean over its seeds. It
reports each criterion's agreement, with a Wilson 95% interval, over all pairs and over the pairs where both
validation AUCs are at least `--saturated`, and, on the pairs where the two criteria disagree, how often each is
the right one (an exact sign test). The pairs share runs, so they are not independent: the intervals and p are
optimistic. Nothing here reads anything but the runs' own records.

    python benchmarks/selection_criterion.py docs/evidence/levers-pneumonia docs/evidence/backbones-pneumonia ...
"""

import argparse
import csv
import itertools
import json
import math
import re
from pathlib import Path

CRITERIA = ("val AUC", "val loss")


def run_records(study_dir: Path) -> list[dict]:
    """One dict per finished run with history: study, point (the run name between arm and seed), arm, seed,
    test AUC, validation AUC and the validation loss of the delivered epoch."""
    records = []
    for path in sorted((study_dir / "runs").iterdir()):
        metrics_file, history_file = path / "metrics.json", path / "history.csv"
        if not (metrics_file.is_file() and history_file.is_file()):
            continue
        metrics = json.loads(metrics_file.read_text())
        with open(history_file) as handle:
            history = {int(row["epoch"]): row for row in csv.DictReader(handle)}
        delivered = history.get(metrics.get("best_epoch", 0) - 1)
        if delivered is None or not delivered.get("val_loss") or "test" not in metrics:
            continue
        match = re.fullmatch(r"(?P<arm>.+?)-(?P<point>.*)-?seed=(?P<seed>\d+)", path.name)
        records.append({"study": study_dir.name, "point": match["point"].rstrip("-"), "arm": match["arm"],
                        "seed": int(match["seed"]), "test": metrics["test"]["auc"], "val AUC": metrics["val"]["auc"],
                        "val loss": float(delivered["val_loss"])})
    return records


def prefers(criterion: str, a: dict, b: dict) -> int:
    """+1 when the criterion prefers a, -1 when b, 0 on a tie."""
    difference = a[criterion] - b[criterion]
    if criterion == "val loss":
        difference = -difference
    return (difference > 0) - (difference < 0)


def agreement(pairs: list[tuple[dict, dict]], margin: float) -> dict:
    """Per criterion: pairs decided (test AUCs further apart than `margin`), pairs where it prefers the better."""
    decided = [(a, b) for a, b in pairs if abs(a["test"] - b["test"]) > margin]
    result = {"pairs": len(decided)}
    verdicts = {criterion: [prefers(criterion, a, b) == (1 if a["test"] > b["test"] else -1) for a, b in decided]
                for criterion in CRITERIA}
    for criterion in CRITERIA:
        right = sum(verdicts[criterion])
        result[criterion] = {"right": right, "interval": wilson(right, len(decided))}
    # Where the two disagree, how often each is the one that is right (an exact sign test on those pairs).
    only_auc = sum(a and not b for a, b in zip(*verdicts.values()))
    only_loss = sum(b and not a for a, b in zip(*verdicts.values()))
    result["disagree"] = {"only val AUC right": only_auc, "only val loss right": only_loss,
                          "p": sign_test(only_auc, only_loss)}
    return result


def sign_test(first: int, second: int) -> float:
    """Two-sided exact binomial p of `first` against `second` successes at one half."""
    from scipy.stats import binomtest

    return binomtest(first, first + second).pvalue if first + second else 1.0


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """The Wilson 95% interval of a proportion."""
    from scipy.stats import binomtest

    if not trials:
        return (math.nan, math.nan)
    interval = binomtest(successes, trials).proportion_ci(method="wilson")
    return (interval.low, interval.high)


def arm_means(records: list[dict]) -> list[dict]:
    """One record per study, point and arm: the means over its seeds."""
    groups = {}
    for record in records:
        groups.setdefault((record["study"], record["point"], record["arm"]), []).append(record)
    return [{"study": study, "point": point, "arm": arm, "seeds": len(members),
             **{key: sum(m[key] for m in members) / len(members) for key in ("test", *CRITERIA)}}
            for (study, point, arm), members in groups.items()]


def pairs_within_points(records: list[dict]) -> list[tuple[dict, dict]]:
    groups = {}
    for record in records:
        groups.setdefault((record["study"], record["point"]), []).append(record)
    return [pair for members in groups.values() for pair in itertools.combinations(members, 2)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dirs", type=Path, nargs="+")
    parser.add_argument("--margin", type=float, default=0.001, help="Test AUCs closer than this are a tie, skipped.")
    parser.add_argument("--saturated", type=float, default=0.99, help="Both validation AUCs at least this.")
    args = parser.parse_args()
    records = [record for study in args.study_dirs for record in run_records(study)]
    print(f"{len(records)} runs with a delivered epoch's validation loss, from {len(args.study_dirs)} studies")
    print("| candidates | pairs | val AUC picks the better test AUC | val loss picks it | where they disagree: "
          "only AUC right, only loss right (sign test p) |")
    print("|---|---|---|---|---|")
    levels = (("runs", records), ("arms (mean over seeds)", arm_means(records)))
    for name, level in levels:
        pairs = pairs_within_points(level)
        for subset, chosen in (("all", pairs), (f"both val AUC ≥ {args.saturated:g}", [
                (a, b) for a, b in pairs if min(a["val AUC"], b["val AUC"]) >= args.saturated])):
            result = agreement(chosen, args.margin)
            cells = [f"{result[c]['right']}/{result['pairs']} [{result[c]['interval'][0]:.2f}, "
                     f"{result[c]['interval'][1]:.2f}]" for c in CRITERIA]
            disagree = result["disagree"]
            print(f"| {name}, {subset} | {result['pairs']} | {cells[0]} | {cells[1]} | "
                  f"{disagree['only val AUC right']}, {disagree['only val loss right']} ({disagree['p']:.2g}) |")


if __name__ == "__main__":
    main()
