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
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from tltf.config import Section
from tltf.errors import TltfError
from tltf.log import logger
from tltf.study.confirmation import choose_confirmed, confirm, write_best
from tltf.study.executor import check_address, ray_settings, run_setup
from tltf.study.spec import Resources, override_text, read_typed_yaml
from tltf.study.trials import SearchResult, trial_row, write_csv

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

    ray = ray_settings(address, setup)  # before Ray is imported and before the setup runs here
    if setup is not None:
        run_setup(setup)  # what the workers will have, the recipes validated here need too
    spec = load_search(space_path)
    base = load_recipe(recipe_path, list(overrides))
    _check_corners(spec, recipe_path, overrides, space_path)
    start = recipe_values(base, spec, space_path) if spec.start_from_recipe else None
    out = Path(out or Path("tunes") / base.name).expanduser().resolve()
    if (out / "trials.csv").exists():
        raise TltfError(f"{out}: holds a finished search; choose another --out")
    check_address(address)
    out.mkdir(parents=True, exist_ok=True)
    logger.info(f"search over {', '.join(spec.space)}: {trials} trials of {base.name}, by validation AUC, in {out}"
                + (" (the first: the recipe's own values)" if start else ""))
    with _ray(spec, ray) as slots:
        results = _execute(spec, Path(recipe_path).resolve(), list(overrides), trials, out, start, slots)
        rows = [trial_row(result, spec.space, start) for result in results]
        finished = [row for row in rows if row.finished]
        confirmation = (confirm(spec, Path(recipe_path).resolve(), list(overrides), out, rows, slots)
                        if spec.confirm and finished else None)
    if confirmation is not None:
        return choose_confirmed(spec, out, base, rows, confirmation)
    write_csv(out / "trials.csv", [row.csv_row() for row in rows])
    if not finished:
        logger.error(f"no trial finished; see {out / 'logs'}")
        return SearchResult(out, None, None, rows)
    best = max(finished, key=lambda row: row.val_auc)
    write_best(out, best.run_dir, base,
               f"trial {best.trial} of {len(rows)}, the best validation AUC ({best.val_auc:.4f})")
    logger.info(f"best: trial {best.trial}, val AUC {best.val_auc:.4f}: {out / 'best.yaml'}")
    return SearchResult(out, out / "best.yaml", best.val_auc, rows)


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
def _ray(spec: SearchSpec, ray):
    """A Ray session for the search and its confirmation (`ray`: the command's `RaySettings`); yields how many
    trials run at once."""
    from tltf.study.executor import cluster_slots, ray_session

    with ray_session(ray):
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


def _tune_space(tune, spec: SearchSpec) -> dict:
    space = {}
    for key, distribution in spec.space.items():
        kind, values = next(iter(distribution.items()))
        space[key] = {"loguniform": lambda v: tune.loguniform(*v), "uniform": lambda v: tune.uniform(*v),
                      "int": lambda v: tune.randint(v[0], v[1] + 1), "choice": tune.choice}[kind](values)
    return space


def _check_corners(spec: SearchSpec, recipe_path, overrides, space_path) -> None:
    """The recipe loads at every corner of the space: a key it lacks, or a value it refuses, fails here in one
    line naming the space file, before anything runs."""
    from tltf.recipe import load_recipe

    for corner in _corners(spec):
        try:
            load_recipe(recipe_path, [*overrides, *corner])
        except TltfError as error:
            raise TltfError(f"{space_path}: {error}") from None


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
