"""Evaluate a trained model on its splits and write metrics.json, report.md and plots; calibrate a model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np

from tltf.evaluate.calibration import expected_calibration_error, fit_calibration
from tltf.evaluate.compare import PREDICTIONS_FILE, update_predictions, write_predictions
from tltf.evaluate.metrics import evaluate_predictions
from tltf.evaluate.plots import plot_confusion, plot_learning_curves, plot_reliability, plot_roc
from tltf.evaluate.report import decision_rule, write_report


def predict_probabilities(model, images: np.ndarray, batch_size: int = 64, verbose: int = 0) -> np.ndarray:
    """`[N]` positive-class probabilities for binary models, `[N,C]` for multiclass."""
    from tltf.data.pipeline import images_in_batches
    from tltf.task import Task

    return Task.of_model(model).scores(model.predict(images_in_batches(images, batch_size), verbose=verbose))


def calibrate_model(model, images, labels, method: str = "temperature", batch_size: int = 64):
    """Fits a calibration on held-out `images` (never the training images) and folds it into `model`.

    Example:
        calibration = tltf.evaluate.calibrate_model(model, val_images, val_labels)   # any Keras classifier
        print(calibration.temperature)

    Args:
        model: a classifier ending in `Dense(activation=sigmoid|softmax)`.
        images: uint8 `[N,S,S,3]` validation images.
        labels: int class ids `[N]`.
        method: `"temperature"` or (binary) `"platt"`.
        batch_size: images per prediction batch.

    Returns:
        the fitted `Calibration`.
    """
    from tltf.models.calibration import fold_calibration, output_layer_of

    output_layer_of(model)  # before predicting: a model that cannot be calibrated says so at once
    calibration = fit_calibration(labels, predict_probabilities(model, images, batch_size), method)
    fold_calibration(model, calibration)
    return calibration


@dataclasses.dataclass
class Evaluation:
    """A run's metrics and, for the plots and predictions.csv, the labels and scores they were computed from.

    Args:
        metrics: `{"val": {...}, "test": {...}, "class_names": [...]}` (what metrics.json holds).
        per_split: `{"val": (labels, scores), "test": (labels, scores)}`: int class ids and the model's
            scores (`[N]` binary, `[N,C]` multiclass); the test entry is val's when there is no test split.
        uncalibrated: the same before a calibration was folded into the model (None without one).
    """

    metrics: dict
    per_split: dict
    uncalibrated: Optional[dict] = None

    def add_calibration(self, calibration, uncalibrated: dict) -> None:
        """Records a calibration fitted on val: its parameters, and each split's ECE before it."""
        self.uncalibrated = uncalibrated
        self.metrics["calibration"] = {**calibration.to_dict(), "fitted_on": "val"}
        for split, (labels, scores) in uncalibrated.items():
            self.metrics[split]["ece_uncalibrated"] = expected_calibration_error(labels, scores)

    @property
    def test_labels(self) -> np.ndarray:
        return self.per_split["test"][0]

    @property
    def test_scores(self) -> np.ndarray:
        return self.per_split["test"][1]


def evaluate_splits(model, splits, bootstrap: int = 1000, seed: int = 0, batch_size: int = 64,
                    verbose: int = 0) -> Evaluation:
    """Metrics for val (which chooses the threshold) and test (or val, when there is no test split)."""
    names = splits.class_names
    val_probs = predict_probabilities(model, splits.val.images, batch_size, verbose)
    val = evaluate_predictions(splits.val.labels, val_probs, names, None, bootstrap, seed)
    test_split = splits.test if splits.test is not None else splits.val
    test_probs = val_probs if splits.test is None else predict_probabilities(model, test_split.images, batch_size,
                                                                             verbose)
    test = evaluate_predictions(test_split.labels, test_probs, names, val.get("threshold"), bootstrap, seed)
    val["split"] = "val"
    test["split"] = "test" if splits.test is not None else "val (no test split)"
    per_split = {"val": (splits.val.labels, val_probs), "test": (test_split.labels, test_probs)}
    return Evaluation({"class_names": names, "val": val, "test": test}, per_split)


def write_evaluation(run_dir: Path, evaluation: Evaluation, outcome, title: str, summary: list[str], plan_rows) -> None:
    """Writes metrics.json, predictions.csv, report.md, roc.png, learning_curves.png (if an epoch trained),
    confusion_matrix.png and reliability.png.

    Args:
        run_dir: the run directory being written.
        evaluation: from `evaluate_splits` (plus anything added to its metrics).
        outcome: the trainer's `TrainingOutcome` (history and phase starts).
        title: the run's name, for the report.
        summary: markdown bullet lines saying what ran, for the report.
        plan_rows: `TrainingPlan.summary_rows()`.
    """
    run_dir = Path(run_dir)
    metrics = evaluation.metrics
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=True) + "\n")
    names = metrics["class_names"]
    write_predictions(run_dir / PREDICTIONS_FILE, evaluation.per_split, names)
    plot_roc(run_dir / "roc.png", evaluation.test_labels, evaluation.test_scores, names,
             title=f"ROC on {metrics['test']['split']}")
    if outcome.history:  # a zero-shot run trains no epoch
        plot_learning_curves(run_dir / "learning_curves.png", outcome.history, outcome.phase_starts)
    plot_confusion(run_dir / "confusion_matrix.png", metrics["test"]["confusion"], names,
                   title=f"confusion on {metrics['test']['split']} ({decision_rule(metrics)})")
    plot_reliability(run_dir / "reliability.png", evaluation.per_split, evaluation.uncalibrated)
    write_report(run_dir / "report.md", title, summary, metrics, plan_rows)


def evaluate_run(run_dir, split: str = "test") -> dict:
    """Re-evaluates `RUN_DIR/model.keras` on one split of the run's own recipe data, and writes that split's
    per-image scores into `RUN_DIR/predictions.csv` (so `tltf compare` can pair runs made before it existed).

    The binary threshold is the one stored in `RUN_DIR/metrics.json` (chosen
    on val at training time).
    """
    from tltf.data.sources import load_splits
    from tltf.errors import TltfError
    from tltf.run_dir import load_run_model, load_run_recipe

    run_dir = Path(run_dir)
    recipe = load_run_recipe(run_dir)
    model = load_run_model(run_dir)
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    chosen = getattr(splits, split)
    if chosen is None:
        raise TltfError(f"--split {split}: the run's data has no {split} split")
    threshold = None
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        threshold = json.loads(metrics_path.read_text()).get("val", {}).get("threshold")
    probs = predict_probabilities(model, chosen.images, recipe.train.batch_size)
    result = evaluate_predictions(chosen.labels, probs, splits.class_names, threshold,
                                  recipe.evaluate.bootstrap, recipe.train.seed)
    result["split"] = split
    update_predictions(run_dir, split, chosen.labels, probs, splits.class_names)
    return result
