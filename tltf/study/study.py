"""`run_study`: a study file's runs on Ray Tune, then its results table, paired statistics and report."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from tltf.errors import TltfError
from tltf.log import logger
from tltf.run_dir import PARTIAL_SUFFIX
from tltf.study.executor import check_address, ray_settings, run_setup
from tltf.study.results import collect_results, is_finished, run_dir, write_results
from tltf.study.spec import check_recipes, expand_runs, load_study


@dataclasses.dataclass
class StudyResult:
    """What `run_study` returns.

    Args:
        study_dir: the study's folder (results.csv, study.md, plots, runs/, logs/).
        rows: results.csv's rows, one per finished run.
        paired: the paired differences against the reference arm (see `tltf.study.statistics`).
        failed: names of runs that failed after their retries.
        unfinished: names of runs not finished (failed, or the study was stopped); rerunning continues them.
    """

    study_dir: Path
    rows: list
    paired: list
    failed: list
    unfinished: list


def run_study(study_path, out=None, address=None, setup=None, overrides=()) -> StudyResult:
    """Runs every arm × grid point × seed of a study file that has not finished yet, then writes its results.

    Example:
        result = run_study("studies/scratch-vs-transfer.yaml")
        print(result.study_dir / "study.md")

    Args:
        study_path: the study YAML.
        out: the study folder; default `studies/<name>/`. Rerunning into the same folder skips finished runs
            and continues interrupted ones from their last saved epoch.
        address: an existing Ray cluster's address; default a local Ray started for the study.
        setup: a function, or its import path `module.function`, every Ray worker runs first (e.g. one that
            registers your own backbones).
        overrides: `KEY=VALUE` settings (`--set`) applied to every run, before its arm's, grid point's and seed's
            (e.g. local data and weights for a shipped study).

    Raises:
        TltfError: a bad study file, a run whose recipe does not validate, or a folder holding runs made with
            another recipe; all before anything runs.
    """
    ray = ray_settings(address, setup)  # before Ray is imported and before the setup runs here
    if setup is not None:
        run_setup(setup)  # what the workers will have, the recipes validated here need too
    spec, recipe_path = load_study(study_path)
    study_dir = Path(out or Path("studies") / spec.name).expanduser().resolve()
    runs = [dataclasses.replace(run, overrides=(*overrides, *run.overrides)) for run in expand_runs(spec)]
    _check_finished_runs_match(study_dir, runs, check_recipes(spec, recipe_path, runs))
    pending = [run for run in runs if not is_finished(run_dir(study_dir, run))]
    continuing = sum(run_dir(study_dir, run).with_name(run.name + PARTIAL_SUFFIX).exists() for run in pending)
    points = len(runs) // len(spec.arms) // len(spec.seeds)
    logger.info(f"study {spec.name}: {len(runs)} runs ({len(spec.arms)} arms × {points} grid points × "
                f"{len(spec.seeds)} seeds) in {study_dir}; {len(runs) - len(pending)} finished, "
                f"{continuing} to continue, {len(pending) - continuing} to start")
    if pending:
        check_address(address)
    study_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(study_path, study_dir / "study.yaml")
    failed = _execute(spec, recipe_path, study_dir, runs, pending, ray) if pending else []
    rows, paired = _write_study(study_dir, spec, runs)
    finished = {row["run"] for row in rows}
    unfinished = [run.name for run in pending if run.name not in finished]
    return StudyResult(study_dir, rows, paired, failed, unfinished)


def _write_study(study_dir: Path, spec, runs) -> tuple[list, dict]:
    """results.csv, paired.json, target.json (with a labelled target) and the report; returns the results' rows
    and the paired differences."""
    from tltf.study.ensembles import ENSEMBLES_FILE, ensemble_seeds
    from tltf.study.report import write_study_report
    from tltf.study.statistics import paired_differences, target_differences

    rows = collect_results(study_dir, runs)
    write_results(study_dir / "results.csv", rows)
    ensembles = ensemble_seeds(study_dir, spec, runs) if spec.ensemble_seeds else []
    if ensembles:
        write_results(study_dir / ENSEMBLES_FILE, ensembles)  # the same CSV layout as results.csv
    paired = paired_differences(study_dir, runs, reference=next(iter(spec.arms)))
    (study_dir / "paired.json").write_text(json.dumps(paired, indent=2, allow_nan=True) + "\n")
    target = target_differences(rows, runs)
    if target:
        (study_dir / "target.json").write_text(json.dumps(target, indent=2, allow_nan=True) + "\n")
    written = write_study_report(study_dir, spec, runs, rows, paired, target, ensembles)
    logger.info(f"study written to {study_dir}: results.csv, paired.json, {'target.json, ' if target else ''}"
                f"{ENSEMBLES_FILE + ', ' if ensembles else ''}"
                f"{', '.join(written)}")
    return rows, paired


def _execute(spec, recipe_path: Path, study_dir: Path, runs: list, pending: list, ray) -> list[str]:
    """The pending runs as Ray Tune trials; returns the names of those that failed after their retries."""
    from tltf.study.executor import cannot_run, cluster_slots, import_tune, ray_session, run_trials, trial_settings

    tune = import_tune()
    with ray_session(ray):
        from tltf.study.progress import TrialProgress

        before = collect_results(study_dir, runs)  # a continued study's ETA and best start from these
        best = max(((row["run"], row["val.auc"]) for row in before), key=lambda pair: pair[1], default=None)
        progress = TrialProgress(len(runs), len(runs) - len(pending), cluster_slots(spec.resources),
                                 spec.max_failures, durations=[r["wall_seconds"] for r in before if r["wall_seconds"]],
                                 best=best)
        shared = trial_settings(recipe_path, study_dir, spec.resources, search=False)
        space = {"run": tune.grid_search([{"name": run.name, "overrides": list(run.overrides)} for run in pending])}
        results = run_trials(shared, space, "ray", study_dir / ".tune", spec.resources,
                             max_failures=spec.max_failures, callbacks=[progress])
    failed = [result.config["run"]["name"] for result in results
              if result.error is not None or cannot_run(result.metrics)]
    for name in failed:
        logger.error(f"{name} failed: see {study_dir / 'logs' / (name + '.log')}; rerun the study to retry it")
    return failed


def _check_finished_runs_match(study_dir: Path, runs: list, recipes: dict) -> None:
    """A finished run is reused only if it was made with the recipe it would be made with now."""
    from tltf.run_dir import recipe_difference

    for run in runs:
        path = run_dir(study_dir, run)
        difference = recipe_difference(path, recipes[run.name]) if is_finished(path) else None
        if difference is not None:
            key, old, new = difference
            raise TltfError(f"{path}: made with {key}={old!r}, the study now asks for {new!r}; use another --out, "
                            "or remove the run to make it again")
