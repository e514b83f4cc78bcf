"""A study's report: `study.md`, the data-efficiency curve and the per-arm strip plot."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import numpy as np

from tltf.study.ensembles import ensembles_markdown
from tltf.study.statistics import grid_points, in_point, mean_interval

CURVE_KEYS = ("data.train_fraction", "data.train_per_class")
CURVE_FILE, STRIP_FILE = "data_efficiency.png", "test_auc_by_arm.png"


def write_study_report(study_dir: Path, spec, runs: list, rows: list[dict], paired: list[dict],
                       target: list[dict] = (), ensembles: list[dict] = ()) -> list[str]:
    """Writes study.md and the plots; returns the names of the files written. `target`: the adapted arms against
    source-only on the target domain (`statistics.target_differences`), when the runs have a labelled target."""
    study_dir = Path(study_dir)
    written = ["study.md"]
    if rows:
        _plot_strip(study_dir / STRIP_FILE, runs, rows)
        written.append(STRIP_FILE)
        if curve_key(spec):
            _plot_curve(study_dir / CURVE_FILE, curve_key(spec), runs, rows)
            written.append(CURVE_FILE)
    (study_dir / "study.md").write_text(study_markdown(spec, runs, rows, paired, written[1:], target, ensembles))
    return written


def curve_key(spec):
    """The grid key the data-efficiency curve is drawn over, if the grid has one."""
    return next((key for key in CURVE_KEYS if key in spec.grid), None)


def study_markdown(spec, runs: list, rows: list[dict], paired: list[dict], plots: list[str],
                   target: list[dict] = (), ensembles: list[dict] = ()) -> str:
    seconds = sum(row["wall_seconds"] or 0 for row in rows)
    reference = next(iter(spec.arms))
    lines = [f"# Study {spec.name}", "",
             f"- recipe: `{spec.recipe}`; seeds {spec.seeds} (`train.seed`; the training images chosen by "
             "`data.subsample_seed` are the same in every arm)",
             *[f"- arm `{arm}`: " + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "the recipe as it is")
               for arm, overrides in spec.arms.items()],
             *[f"- grid `{key}`: {values}" for key, values in spec.grid.items()],
             f"- runs finished: {len(rows)} of {len(runs)}; their training time added up: {seconds / 3600:.2f} h",
             f"- machine (where the study ran): {os.cpu_count()} CPUs ({_cpu_name()}), "
             f"{_gpus()}; {spec.resources.cpus:g} CPUs and {spec.resources.gpus:g} GPUs per run", ""]
    lines += [f"![{name}]({name})" for name in plots] + [""] if plots else []
    lines += ["## Test AUC", "", *_no_test_split(rows), "Mean over seeds (min–max, seeds finished).", "",
              "| " + " | ".join(["arm", *spec.grid]) + " | test AUC |", "|" + "---|" * (len(spec.grid) + 2)]
    for point in grid_points(runs):
        for arm in spec.arms:
            aucs = [row["test.auc"] for row in rows if row["arm"] == arm and in_point(row, point)]
            cells = [arm, *[str(value) for _, value in point]]
            summary = f"{np.mean(aucs):.3f} ({min(aucs):.3f}–{max(aucs):.3f}, {len(aucs)})" if aucs else "not run"
            lines.append("| " + " | ".join(cells + [summary]) + " |")
    lines += ["", f"## Paired differences against `{reference}`", "",
              "Test AUC of the arm minus the reference's, on the same test images. Per seed: DeLong's test "
              "(binary) or a paired bootstrap (multiclass): difference and p. Over seeds: the mean difference "
              "and its 95% t-interval (needs two seeds or more). An interval that contains 0 is no evidence "
              "of a difference.", "",
              "| " + " | ".join([*spec.grid, "arm − reference", "mean over seeds [95% CI]",
                                 "per seed: difference (p)"]) + " |", "|" + "---|" * (len(spec.grid) + 3)]
    for entry in paired:
        low, high = entry["ci"]
        interval = "" if math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
        seeds = ", ".join(f"{s['seed']}: {s['difference']:+.3f} ({s['p']:.2g})" for s in entry["per_seed"])
        cells = [str(value) for value in entry["point"].values()]
        lines.append("| " + " | ".join(cells + [f"{entry['arm']} − {entry['reference']}",
                                                 f"{entry['mean_difference']:+.3f}{interval}", seeds]) + " |")
    if target:
        lines += ["", *_target_markdown(list(spec.grid), target)]
    lines += ["", *ensembles_markdown(list(spec.grid), ensembles)] if ensembles else []
    lines += ["", "`results.csv` has every run's metrics; each run's folder is under `runs/`.", ""]
    return "\n".join(lines)


def _target_markdown(keys: list[str], target: list[dict]) -> list[str]:
    """The target-domain table: each arm's delivered model and source-only's, and their paired difference."""
    lines = ["## Target domain", "",
             "Target accuracy and macro AUC of the delivered models, mean ± sd over seeds; `source_only` is the "
             "same recipe trained without adaptation at the same seed and budget. The difference is in target "
             "accuracy, paired by seed, with its 95% t-interval over seeds: an interval that contains 0 is no "
             "evidence of a difference.", "",
             "| " + " | ".join([*keys, "arm", "target accuracy", "target AUC", "− source-only [95% CI]",
                                "per seed: accuracy (source-only)"]) + " |", "|" + "---|" * (len(keys) + 5)]
    for entry in target:
        cells = [str(value) for value in entry["point"].values()] + [entry["arm"]]
        cells += [_mean_sd(entry["accuracy"], len(entry["seeds"])), _mean_sd(entry["auc"], len(entry["seeds"]))]
        if "mean_difference" in entry:
            low, high = entry["ci"]
            interval = "" if math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]"
            cells.append(f"{entry['mean_difference']:+.3f}{interval}")
        else:
            cells.append("")
        cells.append(", ".join(f"{s['seed']}: {s['accuracy']:.3f}"
                               + ("" if s["source_only"] is None else f" ({s['source_only']:.3f})")
                               for s in entry.get("per_seed", [])))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _mean_sd(pair: list[float], count: int) -> str:
    mean, sd = pair
    return f"{mean:.3f}" + ("" if math.isnan(sd) else f" ± {sd:.3f}") + f" ({count})"


def _plot_curve(path: Path, key: str, runs: list, rows: list[dict]) -> None:
    """Test AUC against the labelled share (log x), one line per arm: the mean over seeds and its 95% band."""
    from tltf.evaluate.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for series, members in _series(key, runs, rows).items():
        xs = sorted(members)
        stats = [mean_interval(members[x]) for x in xs]
        ax.plot(xs, [s[0] for s in stats], marker="o", label=series)
        if all(not math.isnan(s[1]) for s in stats):
            ax.fill_between(xs, [s[1] for s in stats], [s[2] for s in stats], alpha=0.2)
    ax.set_xscale("log")
    ax.set(xlabel=f"{key} (log scale)", ylabel="test AUC", title="data efficiency: mean and 95% band over seeds")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_strip(path: Path, runs: list, rows: list[dict]) -> None:
    """Every run's test AUC, one column per arm and grid point, seeds as dots (jittered sideways)."""
    from tltf.evaluate.plots import _pyplot

    plt = _pyplot()
    columns = [(arm, point) for point in grid_points(runs) for arm in dict.fromkeys(r.arm for r in runs)]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(columns) + 2), 4.5))
    rng = np.random.default_rng(0)
    for x, (arm, point) in enumerate(columns):
        aucs = [row["test.auc"] for row in rows if row["arm"] == arm and in_point(row, point)]
        ax.scatter(x + rng.uniform(-0.12, 0.12, len(aucs)), aucs, s=18)
        if aucs:
            ax.hlines(np.mean(aucs), x - 0.25, x + 0.25, color="black", linewidth=1)
    labels = [arm + "".join(f"\n{k.rsplit('.', 1)[-1]}={v}" for k, v in point) for arm, point in columns]
    ax.set_xticks(range(len(columns)), labels, fontsize=7, rotation=90 if len(columns) > 8 else 0)
    ax.set(ylabel="test AUC", title="test AUC of every run (line: mean over seeds)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _series(key: str, runs: list, rows: list[dict]) -> dict:
    """Line label (the arm, and any other grid values) → x → test AUCs over seeds."""
    series = {}
    for row in rows:
        others = [f"{k.rsplit('.', 1)[-1]}={row[k]}" for k, _ in runs[0].point if k != key]
        label = " ".join([row["arm"], *others])
        series.setdefault(label, {}).setdefault(row[key], []).append(row["test.auc"])
    return series


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _gpus() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}" if gpus else "no GPU"


def _no_test_split(rows: list[dict]) -> list[str]:
    """A warning when some runs' data had no test split: their "test" figures are the validation split's, which
    also chose each run's epoch and threshold, so they flatter the model."""
    without = sum(row.get("test.split", "test") != "test" for row in rows)
    if not without:
        return []
    return [f"**{without} of {len(rows)} runs had no test split**: their test AUC below, and the paired "
            "differences, are on the validation split, which also chose each run's epoch: optimistic, and not "
            "the held-out figure a test split gives (a `test/` folder beside `train/` and `val/`, or a source "
            "with a test split).", ""]
