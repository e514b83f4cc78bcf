"""A search's confirmation: the best trials and the recipe's own values, run again at other seeds; the best mean
validation AUC over those seeds chooses `best.yaml` (`tltf.study.search`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tltf.log import logger
from tltf.study.spec import override_text
from tltf.study.trials import ConfirmationRun, SearchResult, TrialRow, confirmation_candidates, write_csv


def confirm(spec, recipe_path: Path, overrides: list, out: Path, rows: list[TrialRow],
            slots: int) -> list[ConfirmationRun]:
    """Runs the best `confirm.top` finished trials, and the recipe's own values, again at each confirmation seed;
    returns one `ConfirmationRun` per run."""
    from tltf.study.executor import import_tune, run_trials, trial_settings
    from tltf.study.progress import TrialProgress

    tune = import_tune()
    candidates = confirmation_candidates(rows, spec.confirm.top)
    runs = [{"name": f"confirm-{row.trial}-seed={seed}", "trial": row.trial, "seed": seed,
             "overrides": overrides + [override_text(key, row.values[key]) for key in spec.space]
             + [f"train.seed={seed}"]}
            for row in candidates for seed in spec.confirm.seeds]
    logger.info(f"confirming {len(candidates)} candidates ({', '.join(row.trial for row in candidates)}) at "
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
        entries.append(ConfirmationRun(run["trial"], run["seed"],
                                       metrics.get("val_auc") if metrics.get("final") else None,
                                       metrics.get("run_dir", "")))
    return entries


def choose_confirmed(spec, out: Path, base, rows: list[TrialRow], confirmation: list[ConfirmationRun]) -> SearchResult:
    """The candidate with the best mean validation AUC over the confirmation seeds; writes trials.csv (each
    candidate's mean in `confirmed_val_auc`), confirmation.csv and best.yaml."""
    write_csv(out / "confirmation.csv", [run.csv_row() for run in confirmation])
    rows = [dataclasses.replace(row, confirmed_val_auc=_mean_of(row, confirmation)) for row in rows]
    write_csv(out / "trials.csv", [row.csv_row(confirmed=True) for row in rows])
    complete = [row for row in rows if row.confirmed_val_auc is not None]
    if not complete:
        logger.error(f"no candidate finished its confirmation runs; see {out / 'logs'}")
        return SearchResult(out, None, None, rows)
    best = max(complete, key=lambda row: row.confirmed_val_auc)
    own = next((row for row in complete if row.from_recipe), None)
    seeds = ", ".join(map(str, spec.confirm.seeds))
    compared = f"; the recipe's own values: {own.confirmed_val_auc:.4f}" if own else ""
    write_best(out, next(run.run_dir for run in confirmation if run.trial == best.trial), base,
               f"trial {best.trial} of {len(rows)}, the best mean validation AUC over seeds {seeds} "
               f"({best.confirmed_val_auc:.4f}{compared})")
    if best is own:
        logger.info(f"the recipe's own values have the best mean validation AUC over seeds {seeds} "
                    f"({best.confirmed_val_auc:.4f}): the search found nothing better; {out / 'best.yaml'}")
    else:
        logger.info(f"best: trial {best.trial}, mean val AUC over seeds {seeds} {best.confirmed_val_auc:.4f}"
                    f"{compared}: {out / 'best.yaml'}")
    return SearchResult(out, out / "best.yaml", best.confirmed_val_auc, rows,
                        own.confirmed_val_auc if own else None, best is own, list(spec.confirm.seeds))


def _mean_of(row: TrialRow, confirmation: list[ConfirmationRun]):
    """The row's mean confirmation AUC; None when it had no runs or one did not finish."""
    scores = [run.val_auc for run in confirmation if run.trial == row.trial]
    return sum(scores) / len(scores) if scores and None not in scores else None


def write_best(out: Path, run_dir, base, why: str) -> None:
    """best.yaml: the run's recipe, with the starting recipe's training seed (a confirmation run has its own)."""
    from tltf.recipe import load_recipe

    recipe = load_recipe(Path(run_dir) / "recipe.yaml", [f"train.seed={base.train.seed}"])
    (out / "best.yaml").write_text(f"# tltf tune: {why}; `tltf fit` runs it as it is.\n" + recipe.to_yaml())
