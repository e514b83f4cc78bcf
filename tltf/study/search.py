"""`run_search`: a hyperparameter search over a recipe on Ray Tune, by validation AUC only.

The space file names recipe keys and their distributions:

    space:
      train.lr: {loguniform: [1.0e-5, 1.0e-2]}
      train.head_warmup.epochs: {int: [0, 4]}          # inclusive bounds
      model.dropout: {uniform: [0.0, 0.5]}
      data.image_size: {choice: [64, 96, 128]}
    resources: {cpus: 1, gpus: 0}                      # per trial
    grace_epochs: 2                                    # ASHA: every trial gets at least this many epochs

Optuna's TPE (through Ray Tune) proposes each trial from the results so far;
ASHA stops trials whose validation AUC after an epoch budget is in the worst
part of their rung. Test metrics are never looked at.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from tltf.config import Section
from tltf.errors import TltfError
from tltf.log import logger
from tltf.study.results import RUNS_FOLDER
from tltf.study.executor import check_address, run_setup
from tltf.study.spec import Resources, override_text, read_typed_yaml

DISTRIBUTIONS = ("loguniform", "uniform", "int", "choice")


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
    """

    space: dict[str, dict[str, Any]] = Field(..., min_length=1)
    resources: Resources = Field(default_factory=Resources)
    grace_epochs: int = Field(2, ge=1)
    reduction_factor: float = Field(3, gt=1)
    max_concurrent: int | None = Field(None, ge=1)
    seed: int = 0

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
    """What `run_search` returns: the folder, the best trial's recipe file and validation AUC, every trial."""

    out: Path
    best_recipe: Path | None
    best_val_auc: float | None
    trials: list


def load_search(path) -> SearchSpec:
    """Reads and validates a space file; one line naming the file and key on any problem."""
    return read_typed_yaml(Path(path), SearchSpec, "space")


def run_search(recipe_path, space_path, trials: int, out=None, overrides=(), address=None,
               setup=None) -> SearchResult:
    """Searches the space for the recipe with the best validation AUC; writes best.yaml and trials.csv.

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
    out = Path(out or Path("tunes") / base.name).expanduser().resolve()
    if (out / "trials.csv").exists():
        raise TltfError(f"{out}: holds a finished search; choose another --out")
    check_address(address)
    out.mkdir(parents=True, exist_ok=True)
    logger.info(f"search over {', '.join(spec.space)}: {trials} trials of {base.name}, by validation AUC, in {out}")
    results = _execute(spec, Path(recipe_path).resolve(), list(overrides), trials, out, address, setup)
    rows = [_trial_row(result, spec) for result in results]
    _write_trials(out / "trials.csv", rows)
    finished = [row for row in rows if row["status"] == "finished"]
    if not finished:
        logger.error(f"no trial finished; see {out / 'logs'}")
        return SearchResult(out, None, None, rows)
    best = max(finished, key=lambda row: row["val_auc"])
    best_recipe = out / "best.yaml"
    recipe_text = (Path(best["run_dir"]) / "recipe.yaml").read_text()
    best_recipe.write_text(f"# tltf tune: trial {best['trial']} of {len(rows)}, the best validation AUC "
                           f"({best['val_auc']:.4f}); `tltf fit` runs it as it is.\n" + recipe_text)
    logger.info(f"best: trial {best['trial']}, val AUC {best['val_auc']:.4f}: {best_recipe}")
    return SearchResult(out, best_recipe, best["val_auc"], rows)


def _execute(spec: SearchSpec, recipe_path: Path, overrides: list, trials: int, out: Path, address,
             setup) -> list:
    from tltf.study.executor import cluster_slots, import_tune, ray_session, run_trials

    tune = import_tune()
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    with ray_session(address, setup):
        from tltf.study.progress import TrialProgress

        slots = spec.max_concurrent or cluster_slots(spec.resources)
        shared = {"recipe": str(recipe_path), "overrides": overrides, "runs_dir": str(out / RUNS_FOLDER),
                  "logs_dir": str(out / "logs"), "cwd": os.getcwd(), "cpus": spec.resources.cpus,
                  "search": True}
        tune_config = tune.TuneConfig(
            metric="val_auc", mode="max", num_samples=trials, max_concurrent_trials=slots,
            search_alg=OptunaSearch(seed=spec.seed),
            scheduler=ASHAScheduler(time_attr="training_iteration", grace_period=spec.grace_epochs,
                                    reduction_factor=spec.reduction_factor, max_t=10_000))
        return list(run_trials(shared, _tune_space(tune, spec), "ray", out / ".tune", spec.resources,
                               max_failures=1, callbacks=[TrialProgress(total=trials, done=0, slots=slots,
                                                                        max_failures=1, show_test=False)],
                               tune_config=tune_config))


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


def _trial_row(result, spec: SearchSpec) -> dict:
    metrics = result.metrics or {}
    epochs = [m.get("val_auc") for m in (result.metrics_dataframe.to_dict("records")
                                         if result.metrics_dataframe is not None else []) if not m.get("final")]
    status = "finished" if metrics.get("final") else ("failed" if result.error is not None else "stopped early")
    return {"trial": metrics.get("trial_id", "?"),
            **{key: result.config.get(key) for key in spec.space}, "status": status, "epochs": len(epochs),
            "best_epoch_val_auc": max((e for e in epochs if e is not None and not math.isnan(e)), default=None),
            "val_auc": metrics.get("val_auc") if status == "finished" else None,
            "run_dir": metrics.get("run_dir", "")}


def _write_trials(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
