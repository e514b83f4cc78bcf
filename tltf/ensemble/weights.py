"""Member weights chosen on validation: the convex combination of members' probabilities with the least
log-loss. Log-loss, not AUC: where every member's validation AUC is near 0.99, AUC barely moves between
weightings and log-loss still tells them apart."""

from __future__ import annotations

import numpy as np

_EPSILON = 1e-7


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean negative log-likelihood of int `labels` `[N]` under `scores` (`[N]` binary, `[N,C]` multiclass)."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), _EPSILON, 1 - _EPSILON)
    labels = np.asarray(labels)
    if scores.ndim == 1:
        return float(-np.mean(labels * np.log(scores) + (1 - labels) * np.log(1 - scores)))
    return float(-np.mean(np.log(scores[np.arange(len(labels)), labels])))


def fit_member_weights(labels: np.ndarray, member_scores: list) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise the validation log-loss of the weighted mean.

    Example:
        weights = fit_member_weights(val_labels, [scores_a, scores_b, scores_c])

    Args:
        labels: int class ids `[N]` of the validation images.
        member_scores: each member's scores on them (`[N]` binary, `[N,C]` multiclass).
    """
    from scipy.optimize import minimize

    stacked = np.stack([np.asarray(s, dtype=np.float64) for s in member_scores])
    count = len(stacked)
    if count == 1:
        return np.ones(1)

    def loss(weights):
        return log_loss(labels, np.tensordot(weights, stacked, axes=1))

    equal = np.full(count, 1.0 / count)
    found = minimize(loss, equal, method="SLSQP", bounds=[(0.0, 1.0)] * count,
                     constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}])
    weights = np.clip(found.x, 0.0, None)
    weights = weights / weights.sum()
    # Never worse on validation than equal weights (a failed or stalled search keeps them).
    return weights if loss(weights) <= loss(equal) else equal
