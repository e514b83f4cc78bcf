"""Paired comparisons of two models scored on the same images: DeLong's test, and a paired bootstrap.

Two runs evaluated on one test set make correlated AUCs: an image that is
hard for one model tends to be hard for the other. Comparing their separate
confidence intervals ignores that and calls real differences noise. DeLong,
DeLong & Clarke-Pearson (1988) give the covariance of the two AUCs from the
same images; this uses the midrank formulation of Sun & Xu (2014). For
multiclass scores (macro one-vs-rest AUC) there is no such formula, and a
paired bootstrap resamples the images once for both models.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tltf.evaluate.metrics import _average_ranks, task_auc


@dataclasses.dataclass
class PairedComparison:
    """AUC of model b minus AUC of model a on the same images, with its 95% CI and two-sided p.

    Args:
        auc_a: model a's AUC.
        auc_b: model b's AUC.
        difference: `auc_b - auc_a`.
        ci: the 95% confidence interval of the difference.
        p: the two-sided p-value of "no difference".
        method: `delong` or `paired_bootstrap`.
    """

    auc_a: float
    auc_b: float
    difference: float
    ci: list
    p: float
    method: str


def delong_test(labels, scores_a, scores_b, level: float = 0.95) -> PairedComparison:
    """DeLong's test for two correlated binary ROC AUCs (ties count half, as in `roc_auc`).

    Example:
        result = delong_test(test_labels, scores_of_run_a, scores_of_run_b)
        print(result.difference, result.ci, result.p)

    Args:
        labels: `[N]` 0/1 labels.
        scores_a, scores_b: `[N]` each model's positive-class scores for the same images.
        level: the confidence level of `ci`.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.stack([np.asarray(scores_a, np.float64).ravel(), np.asarray(scores_b, np.float64).ravel()])
    m, n = int(labels.sum()), int((~labels).sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong's test needs at least two images of each class")
    # Structural components: for each positive, the share of negatives it outranks, and for each negative,
    # the share of positives that outrank it (from midranks within each class and over all images).
    v10 = np.empty((2, m))
    v01 = np.empty((2, n))
    aucs = np.empty(2)
    for k in range(2):
        overall = _average_ranks(scores[k])
        within_pos, within_neg = _average_ranks(scores[k][labels]), _average_ranks(scores[k][~labels])
        v10[k] = (overall[labels] - within_pos) / n
        v01[k] = 1.0 - (overall[~labels] - within_neg) / m
        aucs[k] = v10[k].mean()
    covariance = np.cov(v10) / m + np.cov(v01) / n
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = float(aucs[1] - aucs[0])
    if variance <= 0:  # identical rankings: no difference, exactly
        return PairedComparison(float(aucs[0]), float(aucs[1]), difference, [difference, difference],
                                1.0 if difference == 0 else 0.0, "delong")
    sd = math.sqrt(variance)
    z_level = _normal_quantile(0.5 + level / 2)
    p = math.erfc(abs(difference) / sd / math.sqrt(2))
    return PairedComparison(float(aucs[0]), float(aucs[1]), difference,
                            [difference - z_level * sd, difference + z_level * sd], p, "delong")


def paired_bootstrap(labels, scores_a, scores_b, samples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> PairedComparison:
    """The AUC difference resampled over images, both models on the same resample (binary or multiclass).

    The CI is the percentile interval; p is twice the share of resampled differences on the far side of 0.

    Args:
        labels: `[N]` class ids.
        scores_a, scores_b: `[N]` binary scores or `[N,C]` probabilities, for the same images.
        samples: bootstrap resamples.
        seed: the resampling seed.
        level: the confidence level of `ci`.
    """
    labels = np.asarray(labels)
    scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(samples):
        rows = rng.integers(0, len(labels), len(labels))
        value = task_auc(labels[rows], scores_b[rows]) - task_auc(labels[rows], scores_a[rows])
        if np.isfinite(value):
            differences.append(value)
    differences = np.asarray(differences)
    auc_a, auc_b = task_auc(labels, scores_a), task_auc(labels, scores_b)
    tail = (1 - level) / 2 * 100
    ci = [float(np.percentile(differences, tail)), float(np.percentile(differences, 100 - tail))]
    p = min(1.0, 2 * min(float(np.mean(differences <= 0)), float(np.mean(differences >= 0))))
    return PairedComparison(float(auc_a), float(auc_b), float(auc_b - auc_a), ci, p, "paired_bootstrap")


def _normal_quantile(probability: float) -> float:
    """The standard normal quantile, by bisection on erf (no scipy needed)."""
    low, high = -10.0, 10.0
    for _ in range(100):
        middle = (low + high) / 2
        if 0.5 * (1 + math.erf(middle / math.sqrt(2))) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2
