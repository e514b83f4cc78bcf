"""Evaluation: metrics (pure functions), plots and the run report."""

from tltf.evaluate.calibration import Calibration, expected_calibration_error, fit_calibration
from tltf.evaluate.compare import compare_runs, read_predictions
from tltf.evaluate.evaluator import Evaluation, calibrate_model, evaluate_run, evaluate_splits, predict_probabilities
from tltf.evaluate.metrics import evaluate_predictions, roc_auc
from tltf.evaluate.report import (
    adaptation_lines,
    format_table,
    health_lines,
    metrics_rows,
    metrics_title,
    single_split_rows,
)

__all__ = [
    "Calibration", "Evaluation", "calibrate_model", "expected_calibration_error", "fit_calibration", "adaptation_lines",
    "compare_runs", "read_predictions", "health_lines", "evaluate_predictions", "evaluate_run", "evaluate_splits",
    "format_table", "metrics_rows", "metrics_title", "predict_probabilities", "roc_auc", "single_split_rows",
]
