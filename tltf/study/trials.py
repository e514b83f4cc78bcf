"""A search's trials and confirmation runs as typed rows, and the CSV files they are written to."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Optional

from tltf.study.executor import cannot_run

FINISHED = "finished"


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial of a search: the values it tried and what became of them (a row of trials.csv).

    Args:
        trial: Ray Tune's trial id.
        values: the space's keys → the values this trial tried.
        status: `finished`, `stopped early` (ASHA) or `failed`.
        epochs: the epochs it reported.
        best_epoch_val_auc: its best epoch's validation AUC, or None.
        val_auc: a finished trial's validation AUC (its delivered model), else None.
        run_dir: its run directory.
        from_recipe: whether these are the recipe's own values; None when the search did not start from them.
        confirmed_val_auc: its mean validation AUC over the confirmation seeds, once confirmed; None if it was
            not a candidate or a run did not finish.
    """

    trial: str
    values: dict
    status: str
    epochs: int = 0
    best_epoch_val_auc: Optional[float] = None
    val_auc: Optional[float] = None
    run_dir: str = ""
    from_recipe: Optional[bool] = None
    confirmed_val_auc: Optional[float] = None

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    def csv_row(self, confirmed: bool = False) -> dict:
        """trials.csv's columns: the trial, its values, (from_recipe), status, epochs, the AUCs, the run, and
        (after a confirmation) confirmed_val_auc."""
        row = {"trial": self.trial, **self.values}
        if self.from_recipe is not None:
            row["from_recipe"] = self.from_recipe
        row.update(status=self.status, epochs=self.epochs, best_epoch_val_auc=self.best_epoch_val_auc,
                   val_auc=self.val_auc, run_dir=self.run_dir)
        if confirmed:
            row["confirmed_val_auc"] = self.confirmed_val_auc
        return row


@dataclasses.dataclass(frozen=True)
class ConfirmationRun:
    """One confirmation run: a candidate trial's values at one seed (a row of confirmation.csv).

    Args:
        trial: the candidate's trial id.
        seed: the training seed.
        val_auc: the run's validation AUC, or None when it did not finish.
        run_dir: its run directory.
    """

    trial: str
    seed: int
    val_auc: Optional[float]
    run_dir: str

    def csv_row(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SearchResult:
    """What `run_search` returns.

    Args:
        out: the search's folder.
        best_recipe: `best.yaml`, or None when no trial finished.
        best_val_auc: the best trial's validation AUC; with `confirm`, its mean over the confirmation seeds.
        trials: trials.csv's rows (`tltf.study.trials.TrialRow`).
        recipe_val_auc: with `start_from_recipe` and `confirm`, the recipe's own values' mean over the
            confirmation seeds, measured like `best_val_auc`.
        best_is_recipe: the recipe's own values won: the search found nothing better.
        confirmation_seeds: with `confirm`, the seeds the means are over.
    """

    out: Path
    best_recipe: Path | None
    best_val_auc: float | None
    trials: list[TrialRow]
    recipe_val_auc: float | None = None
    best_is_recipe: bool = False
    confirmation_seeds: list | None = None


def trial_row(result, space_keys, start: Optional[dict]) -> TrialRow:
    """The row of one Ray Tune result; `start`: the recipe's own values when the search started from them."""
    metrics = result.metrics or {}
    epochs = [m.get("val_auc") for m in (result.metrics_dataframe.to_dict("records")
                                         if result.metrics_dataframe is not None else []) if not m.get("final")]
    failed = result.error is not None or cannot_run(metrics)
    status = FINISHED if metrics.get("final") else ("failed" if failed else "stopped early")
    values = {key: result.config.get(key) for key in space_keys}
    return TrialRow(metrics.get("trial_id", "?"), values, status, len(epochs),
                    max((e for e in epochs if e is not None and not math.isnan(e)), default=None),
                    metrics.get("val_auc") if status == FINISHED else None, metrics.get("run_dir", ""),
                    _same_values(values, start) if start else None)


def _same_values(values: dict, start: dict) -> bool:
    """The recipe's own values, as the search algorithm handed them back (floats may have been converted)."""
    return all(a == b or (isinstance(a, float) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9))
               for a, b in ((values[key], start[key]) for key in start))


def confirmation_candidates(rows: list[TrialRow], top: int) -> list[TrialRow]:
    """The `top` finished trials with the best validation AUC, then the recipe's own values' trial (`from_recipe`)
    if it is not among them, whatever its status: ASHA may have stopped it on one seed's early epochs."""
    finished = sorted((row for row in rows if row.finished), key=lambda row: -row.val_auc)
    candidates = finished[:top]
    return candidates + [row for row in rows if row.from_recipe and row not in candidates]


def write_csv(path: Path, rows: list[dict]) -> None:
    """`rows` (dicts with the same keys) as a CSV file with a header; just the header `trial` when empty."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
