"""`run_search`: a hyperparameter search over a recipe on Ray Tune, by validation AUC only.

The space file names recipe keys and their distributions:

    space:
      train.lr: {loguniform: [1.0e-5, 1.0e-2]}
      train.head_warmup.epochs: {int: [0, 4]}          # inclusive bounds
      model.dropout: {uniform: [0.0, 0.5]}
      data.image_size: {choice: [64, 96, 128]}
    resources: {cpus: 1, gpus: 0}                      # per trial
    grace_epochs: 2                                    # ASHA: every trial gets at least this many epochs
    start_from_recipe: true                            # the first trial is the recipe's own values
    confirm: {top: 2, seeds: [100, 101]}               # the best trials and the recipe's values, rerun

Optuna's TPE (through Ray Tune) proposes each trial from the results so far;
ASHA stops trials whose validation AUC after an epoch budget is in the worst
part of their rung. Test metrics are never looked at.

A single run's validation AUC moves with its training seed, and near a
recipe's ceiling that noise is as large as the differences between good
trials: ranked by one run each, the best trial is mostly the luckiest. With
`confirm`, the best trials (and the recipe's own values) run again in full
at other seeds, all at the same ones, and the best mean over those chooses.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from tltf.config import Section
from tltf.errors import TltfError
from tltf.log import logger
from tltf.study.executor import check_address, run_setup
from tltf.study.spec import Resources, override_text, read_typed_yaml

DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")


class Confirmation(Section):
    """After the search: candidates rerun in full at these training seeds; the best mean validation AUC wins.

    Args:
        top: how many of the best finished trials are candidates (the recipe's own values are one more when
            the search started from them).
        seeds: training seeds (`train.seed`); every candidate runs at each, without early stopping by the
            scheduler, so their means compare like with like.
    """

    top: int = Field(2, ge=1)
    seeds: list[int] = Field(..., min_length=1)

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds):
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds repeat")
        return seeds


class SearchSpec(Section):
    """A search space over recipe keys, and how to run it.

    Args:
        space: recipe key → `{loguniform: [low, high]}`, `{uniform: [low, high]}`, `{int: [low, high]}` (both
            inclusive) or `{choice: [values]}`.
        resources: per trial.
        grace_epochs: ASHA's minimum epochs before a trial can be stopped.
        reduction_factor: ASHA keeps the best 1/reduction_factor of the trials at each rung.
        max_concurrent: trials at once (default: as many as the cluster holds; fewer lets TPE learn more).
        seed: the search algorithm's seed.
        start_from_recipe: the first trial runs the recipe's own values of the space's keys (each must lie in
            the space), so the search measures the recipe it starts from beside its proposals.
        confirm: rerun the best trials (and the recipe's own values) at other seeds and choose by the mean.
    """

    space: dict[str, dict[str, Any]] = Field(..., min_length=1)
    resources: Resources = Field(default_factory=Resources)
    grace_epochs: int = Field(2, ge=1)
    reduction_factor: float = Field(3, gt=1)
    max_concurrent: int | None = Field(None, ge=1)
    seed: int = 0
    start_from_recipe: bool = False
    confirm: Confirmation | None = None

    @field_validator("space")
    @classmethod
    def _distributions(cls, space):
        for key, distribution in space.items():
            if len(distribution) != 1 or next(iter(distribution)) not in DISTRIBUTIONS:
                raise ValueError(f"{key}: give one of {', '.join(DISTRIBUTIONS)}, "
                                 "e.g. {loguniform: [1.0e-5, 1.0e-2]}")
            kind, values = next(iter(distribution.items()))
            if not isinstance(values, list) or (kind != "choice" and (len(values) != 2 or values[0] >= values[1])):
                raise ValueError(f"{key}: {kind} takes [low, high] with low < high")
            if kind == "loguniform" and values[0] <= 0:
                raise ValueError(f"{key}: loguniform needs low > 0")
        return space


@dataclasses.dataclass
class SearchResult:
    """What `run_search` returns.

    Args:
        out: the search's folder.
        best_recipe: `best.yaml`, or None when no trial finished.
        best_val_auc: the best trial's validation AUC; with `confirm`, its mean over the confirmation seeds.
        trials: trials.csv's rows.
        recipe_val_auc: with `start_from_recipe` and `confirm`, the recipe's own values' mean over the
            confirmation seeds, measured like `best_val_auc`.
        best_is_recipe: the recipe's own values won: the search found nothing better.
        confirmation_seeds: with `confirm`, the seeds the means are over.
    """

    out: Path
    best_recipe: Path | None
    best_val_auc: float | None
    trials: list
    recipe_val_auc: float | None = None
    best_is_recipe: bool = False
    confirmation_seeds: list | None = None


def load_search(path) -> SearchSpec:
    """Reads and validates a space file; one line naming the file and key on any problem."""
    return read_typed_yaml(Path(path), SearchSpec, "space")


def run_search(recipe_path, space_path, trials: int, out=None, overrides=(), address=None,
               setup=None) -> SearchResult:
    """Searches the space for the recipe with the best validation AUC; writes best.yaml and trials.csv (and, with
    `confirm`, confirmation.csv).

    Args:
        recipe_path: the recipe to start from.
        space_path: the space file.
        trials: how many configurations to try.
        out: the search's folder; default `tunes/<recipe name>/`.
        overrides: `--set` overrides applied to every trial.
        address: an existing Ray cluster; default a local Ray.
        setup: a function, or its import path `module.function`, every Ray worker runs first.
    """
    from tltf.recipe import load_recipe

    if setup is not None:
        run_setup(setup)  # what the workers will have, the recipes validated here need too
    spec = load_search(space_path)
    base = load_recipe(recipe_path, list(overrides))
    for corner in _corners(spec):  # a key the recipe lacks, or a value it refuses, fails here in one line
        try:
            load_recipe(recipe_path, [*overrides, *corner])
        except TltfError as error:
            raise TltfError(f"{space_path}: {error}") from None
    start = recipe_values(base, spec, space_path) if spec.start_from_recipe else None
    out = Path(out or Path("tunes") / base.name).expanduser().resolve()
    if (out / "trials.csv").exists():
        raise TltfError(f"{out}: holds a finished search; choose another --out")
    check_address(address)
    out.mkdir(parents=True, exist_ok=True)
    logger.info(f"search over {', '.join(spec.space)}: {trials} trials of {base.name}, by validation AUC, in {out}"
                + (" (the first: the recipe's own values)" if start else ""))
    with _ray(spec, address, setup) as slots:
        results = _execute(spec, Path(recipe_path).resolve(), list(overrides), trials, out, start, slots)
        rows = [_trial_row(result, spec, start) for result in results]
        finished = [row for row in rows if row["status"] == "finished"]
        confirmation = (_confirm(spec, Path(recipe_path).resolve(), list(overrides), out, rows, slots)
                        if spec.confirm and finished else None)
    if confirmation is not None:
        return _choose_confirmed(spec, out, base, rows, confirmation)
    _write_trials(out / "trials.csv", rows)
    if not finished:
        logger.error(f"no trial finished; see {out / 'logs'}")
        return SearchResult(out, None, None, rows)
    best = max(finished, key=lambda row: row["val_auc"])
    _write_best(out, best["run_dir"], base,
                f"trial {best['trial']} of {len(rows)}, the best validation AUC ({best['val_auc']:.4f})")
    logger.info(f"best: trial {best['trial']}, val AUC {best['val_auc']:.4f}: {out / 'best.yaml'}")
    return SearchResult(out, out / "best.yaml", best["val_auc"], rows)


def recipe_values(recipe, spec: SearchSpec, space_path) -> dict:
    """The recipe's own value of each of the space's keys; one line naming the key when one lies outside it."""
    from tltf.recipe.load import dotted_value

    resolved = recipe.model_dump(mode="json", by_alias=True)
    values = {}
    for key, distribution in spec.space.items():
        value = dotted_value(resolved, key)
        kind, bounds = next(iter(distribution.items()))
        inside = (value in bounds if kind == "choice" else
                  isinstance(value, (int, float)) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
                  and (kind != "int" or value == int(value)))
        if not inside:
            raise TltfError(f"{space_path}: start_from_recipe: the recipe's {key}={value!r} lies outside the space's "
                            f"{kind} {bounds}; widen the space or set start_from_recipe: false")
        values[key] = int(value) if kind == "int" else value
    return values


@contextlib.contextmanager
def _ray(spec: SearchSpec, address, setup):
    """A Ray session for the search and its confirmation; yields how many trials run at once."""
    from tltf.study.executor import cluster_slots, ray_session

    with ray_session(address, setup):
        yield spec.max_concurrent or cluster_slots(spec.resources)


def _execute(spec: SearchSpec, recipe_path: Path, overrides: list, trials: int, out: Path, start, slots) -> list:
    from tltf.study.executor import import_tune, run_trials, trial_settings
    from tltf.study.progress import TrialProgress

    tune = import_tune()
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    tune_config = tune.TuneConfig(
        metric="val_auc", mode="max", num_samples=trials, max_concurrent_trials=slots,
        search_alg=OptunaSearch(seed=spec.seed, points_to_evaluate=[start] if start else None),
        scheduler=ASHAScheduler(time_attr="training_iteration", grace_period=spec.grace_epochs,
                                reduction_factor=spec.reduction_factor, max_t=10_000))
    return list(run_trials(trial_settings(recipe_path, out, spec.resources, search=True, overrides=overrides),
                           _tune_space(tune, spec), "ray", out / ".tune", spec.resources, max_failures=1,
                           callbacks=[TrialProgress(total=trials, done=0, slots=slots, max_failures=1,
                                                    show_test=False)],
                           tune_config=tune_config))


def _confirm(spec: SearchSpec, recipe_path: Path, overrides: list, out: Path, rows: list, slots: int) -> list:
    """Runs the best `confirm.top` finished trials, and the recipe's own values, again at each confirmation seed;
    returns one entry per run (`trial`, `seed`, `val_auc` or None, `run_dir`)."""
    from tltf.study.executor import import_tune, run_trials, trial_settings
    from tltf.study.progress import TrialProgress

    tune = import_tune()
    candidates = confirmation_candidates(rows, spec.confirm.top)
    runs = [{"name": f"confirm-{row['trial']}-seed={seed}", "trial": row["trial"], "seed": seed,
             "overrides": overrides + [override_text(key, row[key]) for key in spec.space] + [f"train.seed={seed}"]}
            for row in candidates for seed in spec.confirm.seeds]
    logger.info(f"confirming {len(candidates)} candidates ({', '.join(row['trial'] for row in candidates)}) at "
                f"seeds {', '.join(map(str, spec.confirm.seeds))}: {len(runs)} runs")
    space = {"run": tune.grid_search([{"name": run["name"], "overrides": run["overrides"]} for run in runs])}
    # the runs carry their overrides whole (the command's --sets first), so the shared settings hold none
    results = run_trials(trial_settings(recipe_path, out, spec.resources, search=True), space, "confirm",
                         out / ".tune", spec.resources, max_failures=1,
                         callbacks=[TrialProgress(total=len(runs), done=0, slots=slots, max_failures=1,
                                                  show_test=False)],
                         tune_config=tune.TuneConfig(max_concurrent_trials=slots))
    final = {result.config["run"]["name"]: result.metrics or {} for result in results}
    entries = []
    for run in runs:
        metrics = final.get(run["name"], {})
        entries.append({"trial": run["trial"], "seed": run["seed"],
                        "val_auc": metrics.get("val_auc") if metrics.get("final") else None,
                        "run_dir": metrics.get("run_dir", "")})
    return entries


def confirmation_candidates(rows: list[dict], top: int) -> list[dict]:
    """The `top` finished trials with the best validation AUC, then the recipe's own values' trial (`from_recipe`)
    if it is not among them, whatever its status: ASHA may have stopped it on one seed's early epochs."""
    finished = sorted((row for row in rows if row["status"] == "finished"), key=lambda row: -row["val_auc"])
    candidates = finished[:top]
    return candidates + [row for row in rows if row.get("from_recipe") and row not in candidates]


def _choose_confirmed(spec: SearchSpec, out: Path, base, rows: list, confirmation: list) -> SearchResult:
    """The candidate with the best mean validation AUC over the confirmation seeds; writes trials.csv (each
    candidate's mean in `confirmed_val_auc`), confirmation.csv and best.yaml."""
    _write_trials(out / "confirmation.csv", confirmation)
    for row in rows:
        scores = [entry["val_auc"] for entry in confirmation if entry["trial"] == row["trial"]]
        row["confirmed_val_auc"] = sum(scores) / len(scores) if scores and None not in scores else None
    _write_trials(out / "trials.csv", rows)
    complete = [row for row in rows if row["confirmed_val_auc"] is not None]
    if not complete:
        logger.error(f"no candidate finished its confirmation runs; see {out / 'logs'}")
        return SearchResult(out, None, None, rows)
    best = max(complete, key=lambda row: row["confirmed_val_auc"])
    own = next((row for row in complete if row.get("from_recipe")), None)
    seeds = ", ".join(map(str, spec.confirm.seeds))
    compared = f"; the recipe's own values: {own['confirmed_val_auc']:.4f}" if own else ""
    _write_best(out, next(entry["run_dir"] for entry in confirmation if entry["trial"] == best["trial"]), base,
                f"trial {best['trial']} of {len(rows)}, the best mean validation AUC over seeds {seeds} "
                f"({best['confirmed_val_auc']:.4f}{compared})")
    if best is own:
        logger.info(f"the recipe's own values have the best mean validation AUC over seeds {seeds} "
                    f"({best['confirmed_val_auc']:.4f}): the search found nothing better; {out / 'best.yaml'}")
    else:
        logger.info(f"best: trial {best['trial']}, mean val AUC over seeds {seeds} {best['confirmed_val_auc']:.4f}"
                    f"{compared}: {out / 'best.yaml'}")
    return SearchResult(out, out / "best.yaml", best["confirmed_val_auc"], rows,
                        own["confirmed_val_auc"] if own else None, best is own, list(spec.confirm.seeds))


def _write_best(out: Path, run_dir, base, why: str) -> None:
    """best.yaml: the run's recipe, with the starting recipe's training seed (a confirmation run has its own)."""
    from tltf.recipe import load_recipe

    recipe = load_recipe(Path(run_dir) / "recipe.yaml", [f"train.seed={base.train.seed}"])
    (out / "best.yaml").write_text(f"# tltf tune: {why}; `tltf fit` runs it as it is.\n" + recipe.to_yaml())


def _tune_space(tune, spec: SearchSpec) -> dict:
    space = {}
    for key, distribution in spec.space.items():
        kind, values = next(iter(distribution.items()))
        space[key] = {"loguniform": lambda v: tune.loguniform(*v), "uniform": lambda v: tune.uniform(*v),
                      "int": lambda v: tune.randint(v[0], v[1] + 1), "choice": tune.choice}[kind](values)
    return space


def _corners(spec: SearchSpec) -> list[list[str]]:
    """The space's lowest and highest values (every choice), as override lists, to validate before running."""
    lows, highs, choices = [], [], []
    for key, distribution in spec.space.items():
        kind, values = next(iter(distribution.items()))
        if kind == "choice":
            choices += [[override_text(key, value)] for value in values]
        else:
            lows.append(override_text(key, values[0]))
            highs.append(override_text(key, values[-1]))
    return [lows, highs, *choices]


def _trial_row(result, spec: SearchSpec, start: dict | None) -> dict:
    metrics = result.metrics or {}
    epochs = [m.get("val_auc") for m in (result.metrics_dataframe.to_dict("records")
                                         if result.metrics_dataframe is not None else []) if not m.get("final")]
    status = "finished" if metrics.get("final") else ("failed" if result.error is not None else "stopped early")
    values = {key: result.config.get(key) for key in spec.space}
    return {"trial": metrics.get("trial_id", "?"),
            **values, **({"from_recipe": _same_values(values, start)} if start else {}), "status": status,
            "epochs": len(epochs),
            "best_epoch_val_auc": max((e for e in epochs if e is not None and not math.isnan(e)), default=None),
            "val_auc": metrics.get("val_auc") if status == "finished" else None,
            "run_dir": metrics.get("run_dir", "")}


def _same_values(values: dict, start: dict) -> bool:
    """The recipe's own values, as the search algorithm handed them back (floats may have been converted)."""
    return all(a == b or (isinstance(a, float) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9))
               for a, b in ((values[key], start[key]) for key in start))


def _write_trials(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
