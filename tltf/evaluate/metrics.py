"""Evaluation metrics as pure functions of labels and predicted probabilities.

ROC AUC is computed from ranks (the Mann–Whitney statistic, ties counted
half), which makes a 1000-resample bootstrap cheap; the tests cross-check it
against `sklearn.metrics.roc_auc_score`.
"""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC AUC; NaN when only one class is present or a score is not finite (a diverged model)."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0 or not np.isfinite(scores).all():
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), np.float64)
    # Tied values share the mean of the ranks they span.
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    mean_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """One-vs-rest macro AUC over the classes present in `labels`."""
    aucs = [roc_auc(labels == c, probabilities[:, c]) for c in range(probabilities.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def task_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """AUC for a `[N]` binary score or macro OvR AUC for `[N,C]` probabilities."""
    if probabilities.ndim == 1:
        return roc_auc(labels, probabilities)
    return macro_auc(labels, probabilities)


def bootstrap_auc_ci(labels, probabilities, samples: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap confidence interval for `task_auc`; None (not computed) if `samples` is 0."""
    if samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    n = len(labels)
    values = []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        value = task_auc(labels[idx], probabilities[idx])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return [float("nan"), float("nan")]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity − 1 (Youden's J)."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    if labels.all() or not labels.any() or not np.isfinite(scores).all():
        return 0.5
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Each distinct score is a candidate threshold; take the counts at the end of its run.
    ends = np.concatenate([np.flatnonzero(np.diff(sorted_scores)), [len(scores) - 1]])
    tpr = np.cumsum(sorted_labels)[ends] / labels.sum()
    fpr = np.cumsum(~sorted_labels)[ends] / (~labels).sum()
    return float(sorted_scores[ends][np.argmax(tpr - fpr)])


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """`[true, predicted]` counts."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predicted, int)), 1)
    return matrix


def binary_rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Sensitivity, specificity and accuracy when `score >= threshold` means positive."""
    labels = np.asarray(labels).astype(bool).ravel()
    predicted = np.asarray(scores).ravel() >= threshold
    return {
        "threshold": float(threshold),
        "sensitivity": float(predicted[labels].mean()) if labels.any() else float("nan"),
        "specificity": float((~predicted[~labels]).mean()) if (~labels).any() else float("nan"),
        "accuracy": float((predicted == labels).mean()),
    }


def evaluate_predictions(labels, probabilities, class_names, threshold=None, bootstrap: int = 1000,
                         seed: int = 0) -> dict:
    """All of a split's metrics as a JSON-ready dict.

    Args:
        labels: int class ids `[N]`.
        probabilities: `[N]` or `[N,1]` for binary (the positive class),
            `[N,C]` for multiclass.
        class_names: names of the classes.
        threshold: binary only; the decision threshold chosen on val. If
            None, Youden's J on these labels is used (that is how val's
            threshold is chosen).
        bootstrap: resamples for the AUC confidence interval.
        seed: bootstrap seed.

    Returns:
        n, auc, auc_ci, ece (top-label, `calibration.ECE_BINS` equal-width bins), accuracy, confusion, and the
        rates at 0.5 and at the threshold (binary) or the per-class AUCs (multiclass).
    """
    from tltf.evaluate.calibration import expected_calibration_error
    from tltf.task import Task

    task = Task(class_names)
    labels = np.asarray(labels, np.int64).ravel()
    probabilities = task.scores(np.asarray(probabilities, np.float64))
    result = {
        "n": int(len(labels)),
        "auc": task_auc(labels, probabilities),
        "auc_ci": bootstrap_auc_ci(labels, probabilities, bootstrap, seed),
        "ece": expected_calibration_error(labels, probabilities),
    }
    if task.binary:
        if threshold is None:
            threshold = youden_threshold(labels, probabilities)
        at_half = binary_rates(labels, probabilities, 0.5)
        result.update(accuracy=at_half["accuracy"], at_0_5=at_half,
                      at_threshold=binary_rates(labels, probabilities, threshold), threshold=float(threshold),
                      # at the threshold `tltf predict` and the export decide at, so the report shows their decisions
                      confusion=confusion_matrix(labels, task.decide(probabilities, threshold), 2).tolist())
    else:
        predicted = task.decide(probabilities)
        result.update(
            accuracy=float((predicted == labels).mean()),
            per_class_auc={name: roc_auc(labels == c, probabilities[:, c]) for c, name in enumerate(class_names)},
            confusion=confusion_matrix(labels, predicted, len(class_names)).tolist())
    return result
