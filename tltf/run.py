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
    from tltf.assemble import assemble_training, check_weights, model_from_recipe, plan_text
    from tltf.data.sources import load_splits
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
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    logger.info(f"data: {splits.summary()}")
    _check_calibration(recipe.evaluate.calibrate, splits.class_names)
    target_domain = _load_target_domain(recipe, splits)
    source_splits, translation = splits, None
    if recipe.adaptation is not None and recipe.adaptation.method == "translate":
        splits, translation = _translate(recipe, splits, target_domain, verbose)
    with dtype_policy(recipe.train.precision), strategy.scope():
        model = model_from_recipe(recipe, Task(splits.class_names))
        plan = assemble_training(recipe, model, splits, target_domain, verbose)
        logger.info(plan_text(recipe, plan, strategy.num_replicas_in_sync))
        for warning in plan.warnings:
            logger.warning(warning)
        with staged_run_dir(final_dir) as work_dir:
            (work_dir / "recipe.yaml").write_text(recipe.to_yaml())
            if translation is not None:
                translation.write_record(work_dir / "translation.png", work_dir / "translation_losses.csv",
                                         source_splits.train.images[:6], target_domain.images[:6])
                translation.save_generators(work_dir / "translation")
            before = _domain_features(model, splits, target_domain, recipe) if target_domain else None
            outcome = Trainer(verbose, callbacks).run(plan, work_dir)
            metrics = _evaluate(recipe, plan, outcome, splits, target_domain, before, work_dir, verbose,
                                source_splits)
            _finish(work_dir, started)
    logger.info(f"run written to {final_dir}")
    return FitResult(final_dir, metrics, outcome.history, plan.summary_rows())


def _seed(train) -> None:
    """Every generator seeded; with `deterministic`, TensorFlow's op determinism too."""
    import keras

    from tltf.train.distribution import make_deterministic

    keras.utils.set_random_seed(train.seed)
    if train.deterministic:
        make_deterministic(train.seed)


def _with_precision_chosen(recipe):
    """`precision: auto` resolved for this machine (logged), so the run and its recipe.yaml say which."""
    from tltf.train.precision import choose_precision

    if recipe.train.precision != "auto":
        return recipe
    choice = choose_precision(recipe)
    logger.info(f"precision: {choice.precision} ({choice.reason})")
    return recipe.model_copy(update={"train": recipe.train.model_copy(update={"precision": choice.precision})})


def _evaluate(recipe, plan, outcome, splits, target_domain, before, work_dir: Path, verbose: int,
              source_splits) -> dict:
    """Scores the best checkpoint (and, with adaptation, the target and the baseline, trained on
    `source_splits`: the source as loaded, before any translation); writes the evaluation."""
    from tltf.assemble import run_summary
    from tltf.evaluate.evaluator import evaluate_splits, write_evaluation

    calibrated = _calibrate(recipe.evaluate.calibrate, plan.model, splits, recipe.train.batch_size, work_dir)
    logger.info("evaluating the best checkpoint")
    evaluation = evaluate_splits(plan.model, splits, recipe.evaluate.bootstrap, recipe.train.seed,
                                 recipe.train.batch_size)
    if calibrated is not None:
        evaluation.add_calibration(*calibrated)
    evaluation.metrics["best_epoch"] = outcome.best_epoch
    evaluation.metrics["health"] = {"status": plan.health.status, "events": plan.health.events}
    if target_domain is not None:
        evaluation.metrics.update(_adaptation_results(recipe, plan, outcome, splits, target_domain, before, work_dir,
                                                      verbose, source_splits))
    _write_saliency_grid(work_dir, plan.model, splits, evaluation)
    write_evaluation(work_dir, evaluation, outcome, recipe.name, run_summary(recipe, plan, splits.class_names),
                     plan.summary_rows())
    return evaluation.metrics


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
    partial = work_dir / "model.keras.partial.keras"
    model.save(partial)
    os.replace(partial, work_dir / "model.keras")
    logger.info(f"calibration: {method} scaling fitted on val ({_calibration_text(calibration)}), folded into "
                "the output layer")
    return calibration, {"val": (splits.val.labels, scores["val"]), "test": (test.labels, scores["test"])}


def _calibration_text(calibration) -> str:
    if calibration.method == "platt":
        return f"logit × {calibration.scale:.3f} {calibration.shift:+.3f}"
    return f"temperature {calibration.temperature:.3f}"


def _finish(work_dir: Path, started: float) -> None:
    """The run is complete: nothing is left to resume (the baseline's state included), and timing.json says how
    long it took (apart from metrics.json, which same-seed runs reproduce byte for byte; a continued run counts
    from its continuation)."""
    for state in work_dir.rglob(STATE_FILE):
        state.unlink()
    (work_dir / TIMING_FILE).write_text(json.dumps({"wall_seconds": round(time.monotonic() - started, 1)}))


def _load_target_domain(recipe, splits):
    if recipe.adaptation is None:
        return None
    from tltf.adapt.target import load_target

    target_domain = load_target(recipe.adaptation.target, recipe.data.image_size, splits.class_names)
    logger.info(target_domain.summary())
    return target_domain


def _translate(recipe, splits, target_domain, verbose: int):
    """`adaptation: {method: translate}`: the source's train and val splits in the target's look, and the
    CycleGAN's record. A continued run trains the CycleGAN again (the same translation with `deterministic`)."""
    from tltf.adapt.translate import TranslationSettings, translated_splits

    chosen = recipe.adaptation.translate.model_dump()
    chosen["image_size"] = chosen["image_size"] or recipe.data.image_size
    settings = TranslationSettings(seed=recipe.train.seed, **chosen)
    logger.info("translating the source into the target's look (CycleGAN)")
    return translated_splits(splits, target_domain.images, settings, verbose)


def _domain_features(model, splits, target_domain, recipe):
    from tltf.adapt.evaluation import domain_features

    return domain_features(model, splits.train.images, target_domain.images, recipe.train.batch_size)


def _adaptation_results(recipe, plan, outcome, splits, target_domain, before, work_dir: Path, verbose: int,
                        source_splits) -> dict:
    """Target metrics, the source-only baseline (trained by the same trainer from its own plan on
    `source_splits`, or kept by a method that adapts only after training), the A-distance, the selection report
    and the verdict."""
    from tltf.adapt.evaluation import adaptation_report

    baseline = None
    if recipe.adaptation.compare_source_only:
        baseline = _kept_source_only(plan, work_dir / "source_only") or _train_source_only(
            recipe, source_splits, work_dir / "source_only", verbose)
    return adaptation_report(plan.model, baseline, splits, target_domain, before, work_dir, recipe.train.seed,
                             recipe.train.batch_size, recipe.adaptation, outcome.history)


def _kept_source_only(plan, directory: Path):
    """The source-only model a finishing step (AdaBN) kept before adapting, saved in `directory`; else None."""
    import keras

    kept = [step.source_only_weights for step in plan.finishers if getattr(step, "source_only_weights", None)]
    if not kept:
        return None
    baseline = keras.models.clone_model(plan.model)
    baseline.set_weights(kept[0])
    directory.mkdir(exist_ok=True)
    baseline.save(directory / "model.keras")
    return baseline


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
