"""fit(recipe): data → model → plan → trainer → evaluation → run directory.

The one function that runs a recipe end to end. Each step is its own piece:
the data sources load the splits, `assemble_training` turns the recipe into
a plan, the `Trainer` executes it with ordinary `model.fit` calls, the
evaluator scores the best checkpoint, and `staged_run_dir` makes the run
directory appear only when everything is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from tltf.log import logger
from tltf.train.resume import STATE_FILE

TIMING_FILE = "timing.json"


@dataclasses.dataclass
class FitResult:
    """What `tltf.fit` returns.

    Example:
        result = tltf.fit(tltf.load_recipe("recipes/pneumonia-mobilenet.yaml"))
        print(result.run_dir, result.metrics["test"]["auc"], result.metrics["best_epoch"])

    Args:
        run_dir: the finished run directory.
        metrics: what `metrics.json` holds (val, test, best_epoch, adaptation results).
        history: per-epoch Keras metrics over all phases.
        plan: one row per phase (name, epochs, lr, backbone, trainable and frozen parameters, feature cache).
    """

    run_dir: Path
    metrics: dict
    history: dict
    plan: list


def fit(recipe, run_dir=None, *, runs_root: str = "runs", verbose: Optional[int] = None, callbacks=(),
        resume: bool = False, restart: bool = False) -> FitResult:
    """Trains and evaluates a recipe, writing a complete run directory; progress goes to the `tltf` logger.

    Example:
        result = tltf.fit(tltf.load_recipe("recipes/pneumonia-mobilenet.yaml"))

    Args:
        recipe: a validated `tltf.recipe.Recipe`.
        run_dir: where to write; default `runs/<name>-<UTC timestamp>`.
        runs_root: parent folder of default run directories.
        verbose: Keras verbosity; default a progress bar on a terminal, one line per epoch otherwise.
        callbacks: extra Keras callbacks, passed to every phase's `fit`.
        resume: continue the newest interrupted run of this recipe (with `run_dir`, `RUN_DIR.partial` always is).
        restart: discard an interrupted run in `run_dir` and start again.

    Raises:
        TltfError: bad data, weights or run dir, before anything is written.
    """
    from tltf.assemble import assemble_training, check_weights, model_from_recipe
    from tltf.plan_text import plan_text
    from tltf.run_dir import run_dir_for, staged_run_dir
    from tltf.task import Task
    from tltf.train.distribution import dtype_policy, make_strategy
    from tltf.train.trainer import Trainer

    started = time.monotonic()
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    strategy = make_strategy(recipe.train.distribution)
    _seed(recipe.train)
    check_weights(recipe)
    recipe = _with_precision_chosen(recipe)  # first: a continued run's recipe.yaml holds the precision chosen
    final_dir = run_dir_for(recipe, run_dir, runs_root, resume, restart)
    splits, adapted = _load_data(recipe, verbose)
    with dtype_policy(recipe.train.precision), strategy.scope():
        model = model_from_recipe(recipe, Task(splits.class_names))
        plan = assemble_training(recipe, model, splits, adapted.target_domain if adapted else None, verbose)
        logger.info(plan_text(recipe, plan, strategy.num_replicas_in_sync))
        for warning in plan.warnings:
            logger.warning(warning)
        with staged_run_dir(final_dir) as work_dir:
            (work_dir / "recipe.yaml").write_text(recipe.to_yaml())
            if adapted:
                adapted.write_record(work_dir, model)
            outcome = Trainer(verbose, callbacks).run(plan, work_dir)
            metrics = _evaluate(recipe, plan, outcome, splits, adapted, work_dir, verbose)
            finish_run(work_dir, started)
    logger.info(f"run written to {final_dir}")
    return FitResult(final_dir, metrics, outcome.history, plan.summary_rows())


def _load_data(recipe, verbose: int):
    """The splits the classifier trains on, and the run's adaptation (None without): its target loaded, its
    data prepared."""
    from tltf.adapt.adapted_run import start_adaptation
    from tltf.data.sources import load_splits

    splits = load_splits(recipe.data, seed=recipe.train.seed)
    logger.info(f"data: {splits.summary()}")
    _check_calibration(recipe.evaluate.calibrate, splits.class_names)
    adapted = start_adaptation(recipe, splits, verbose)
    return (adapted.splits if adapted else splits), adapted


def _seed(train) -> None:
    """Every generator seeded; with `deterministic`, TensorFlow's op determinism too."""
    import keras

    from tltf.train.distribution import make_deterministic

    keras.utils.set_random_seed(train.seed)
    if train.deterministic:
        make_deterministic(train.seed)


def _with_precision_chosen(recipe):
    """`precision: auto` resolved for this machine (logged), so the run and its recipe.yaml say which."""
    from tltf.assemble import recipe_precision

    if recipe.train.precision != "auto":
        return recipe
    choice = recipe_precision(recipe)
    logger.info(f"precision: {choice.precision} ({choice.reason})")
    return recipe.model_copy(update={"train": recipe.train.model_copy(update={"precision": choice.precision})})


def _evaluate(recipe, plan, outcome, splits, adapted, work_dir: Path, verbose: int) -> dict:
    """Scores the best checkpoint (and, with adaptation, the target and the source-only baseline, trained on the
    source as loaded, before any translation); writes the evaluation."""
    from tltf.evaluate.evaluator import evaluate_splits, write_evaluation
    from tltf.plan_text import run_summary

    calibrated = _calibrate(recipe.evaluate.calibrate, plan.model, splits, recipe.train.batch_size, work_dir)
    delivered = _with_views(recipe.evaluate.tta, plan.model, work_dir)
    logger.info("evaluating the best checkpoint")
    evaluation = evaluate_splits(delivered, splits, recipe.evaluate.bootstrap, recipe.train.seed,
                                 recipe.train.batch_size)
    if calibrated is not None:
        evaluation.add_calibration(*calibrated)
    evaluation.metrics["best_epoch"] = outcome.best_epoch
    evaluation.metrics["budget"] = _budget_used(outcome, plan.steps_per_epoch)
    evaluation.metrics["health"] = {"status": plan.health.status, "events": plan.health.events}
    if adapted is not None:
        def train_source_only(directory):
            return _train_source_only(recipe, adapted.source_splits, directory, verbose)

        evaluation.metrics.update(adapted.results(plan, outcome, work_dir, train_source_only))
    _write_saliency_grid(work_dir, plan.model, splits, evaluation)
    write_evaluation(work_dir, evaluation, outcome, recipe.name, run_summary(recipe, plan, splits.class_names),
                     plan.summary_rows())
    return evaluation.metrics


def _budget_used(outcome, steps_per_epoch: int) -> dict:
    """Epochs and optimizer steps planned and run; what stopping early (`train.stop`, health) saved."""
    run, planned = outcome.epochs_run * steps_per_epoch, outcome.epochs_planned * steps_per_epoch
    return {"epochs_run": outcome.epochs_run, "epochs_planned": outcome.epochs_planned, "steps_run": run,
            "steps_planned": planned, "steps_saved": planned - run}


def _write_saliency_grid(work_dir: Path, model, splits, evaluation) -> None:
    """saliency.png: Grad-CAM on the most confident right and wrong test decisions (report.md shows it)."""
    from tltf.saliency import write_saliency_grid

    split = splits.test if splits.test is not None else splits.val
    threshold = evaluation.metrics["val"].get("threshold", 0.5)
    try:
        write_saliency_grid(work_dir / "saliency.png", model, split.images, evaluation.test_labels,
                            evaluation.test_scores, threshold, evaluation.metrics["class_names"])
    except ValueError as problem:  # a model Grad-CAM cannot read: the run is still complete without the grid
        logger.warning(f"no saliency grid in the report: {problem}")


def _check_calibration(method: str, class_names) -> None:
    from tltf.errors import RecipeError

    if method == "platt" and len(class_names) > 2:
        raise RecipeError(f"evaluate.calibrate: platt scaling is for two classes and the data has "
                          f"{len(class_names)}; use temperature")


def _calibrate(method: str, model, splits, batch_size: int, work_dir: Path):
    """With `evaluate.calibrate`, fits it on val and folds it into the delivered model (model.keras rewritten);
    returns `(calibration, the uncalibrated val and test scores)`, or None."""
    from tltf.evaluate.calibration import fit_calibration
    from tltf.evaluate.evaluator import predict_probabilities
    from tltf.models.calibration import fold_calibration

    if method == "none":
        return None
    test = splits.test if splits.test is not None else splits.val
    scores = {"val": predict_probabilities(model, splits.val.images, batch_size)}
    scores["test"] = scores["val"] if splits.test is None else predict_probabilities(model, test.images, batch_size)
    try:
        calibration = fit_calibration(splits.val.labels, scores["val"], method)
    except ValueError as problem:  # a model that ranks val backwards: delivered as it is, and said so
        logger.warning(f"evaluate.calibrate: {problem}")
        return None
    fold_calibration(model, calibration)
    _save_delivered(model, work_dir)
    logger.info(f"calibration: {method} scaling fitted on val ({_calibration_text(calibration)}), folded into "
                "the output layer")
    return calibration, {"val": (splits.val.labels, scores["val"]), "test": (test.labels, scores["test"])}


def _with_views(views, model, work_dir: Path):
    """With `evaluate.tta`, the delivered model averages the image's views (model.keras rewritten); else `model`."""
    from tltf.evaluate.inference_views import with_test_time_augmentation

    if not views:
        return model
    delivered = with_test_time_augmentation(model, views)
    _save_delivered(delivered, work_dir)
    logger.info(f"test-time augmentation: the delivered model averages the image and its {', '.join(views)} view"
                f"{'s' if len(views) > 1 else ''}")
    return delivered


def _save_delivered(model, work_dir: Path) -> None:
    """model.keras replaced whole (written beside it, then renamed)."""
    partial = work_dir / "model.keras.partial.keras"
    model.save(partial)
    os.replace(partial, work_dir / "model.keras")


def _calibration_text(calibration) -> str:
    if calibration.method == "platt":
        return f"logit × {calibration.scale:.3f} {calibration.shift:+.3f}"
    return f"temperature {calibration.temperature:.3f}"


def finish_run(work_dir: Path, started: float) -> None:
    """The run is complete: nothing is left to resume (the baseline's state included), and timing.json says how
    long it took (apart from metrics.json, which same-seed runs reproduce byte for byte; a continued run counts
    from its continuation)."""
    for state in work_dir.rglob(STATE_FILE):
        state.unlink()
    (work_dir / TIMING_FILE).write_text(json.dumps({"wall_seconds": round(time.monotonic() - started, 1)}))


def _train_source_only(recipe, splits, directory: Path, verbose: int):
    """The same recipe without adaptation, same seed and budget: the baseline adaptation must beat."""
    import keras

    from tltf.assemble import assemble_training, model_from_recipe
    from tltf.task import Task
    from tltf.train.trainer import Trainer

    logger.info("training the source-only baseline at the same budget")
    keras.utils.set_random_seed(recipe.train.seed)
    source_only = recipe.model_copy(update={"adaptation": None})
    baseline = model_from_recipe(source_only, Task(splits.class_names))
    plan = assemble_training(source_only, baseline, splits, verbose=verbose)
    directory.mkdir(exist_ok=True)  # an interrupted baseline continues from its own resume state
    Trainer(verbose).run(plan, directory)
    return baseline
