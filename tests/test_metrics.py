import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import roc_auc_score

from tltf.evaluate.metrics import (
    binary_rates, bootstrap_auc_ci, confusion_matrix, evaluate_predictions, macro_auc, roc_auc, youden_threshold,
)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_including_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.6 + labels * 0.3, 1)  # coarse: many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_macro_auc_matches_sklearn_ovr():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + np.eye(4)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert macro_auc(labels, probabilities) == pytest.approx(expected, abs=1e-12)


def test_single_class_auc_is_nan():
    assert np.isnan(roc_auc(np.ones(5), np.arange(5)))


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = rng.random(500) + 0.5 * labels
    low, high = bootstrap_auc_ci(labels, scores, 500, seed=3)
    assert low < roc_auc(labels, scores) < high and high - low < 0.15
    assert bootstrap_auc_ci(labels, scores, 500, seed=3) == [low, high]


def test_youden_threshold_maximises_j():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.7, 0.6, 0.8, 0.9])
    threshold = youden_threshold(labels, scores)
    best = max(np.unique(scores), key=lambda t: sum(binary_rates(labels, scores, t)[k] for k in ("sensitivity", "specificity")))
    assert threshold == best == 0.6


def test_binary_rates_and_confusion_match_sklearn():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    scores = rng.random(200)
    rates = binary_rates(labels, scores, 0.4)
    tn, fp, fn, tp = sk_confusion(labels, scores >= 0.4).ravel()
    assert rates["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert rates["specificity"] == pytest.approx(tn / (tn + fp))
    assert confusion_matrix(labels, scores >= 0.4, 2).tolist() == sk_confusion(labels, scores >= 0.4).tolist()


def test_evaluate_predictions_binary_and_multiclass():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 100)
    binary = evaluate_predictions(labels, rng.random((100, 1)), ["a", "b"], threshold=0.3, bootstrap=20)
    assert binary["threshold"] == 0.3 and binary["at_threshold"]["threshold"] == 0.3
    assert set(binary) >= {"auc", "auc_ci", "accuracy", "at_0_5", "confusion"}
    labels3 = rng.integers(0, 3, 90)
    multi = evaluate_predictions(labels3, rng.dirichlet(np.ones(3), 90), ["x", "y", "z"], bootstrap=20)
    assert set(multi["per_class_auc"]) == {"x", "y", "z"} and np.array(multi["confusion"]).sum() == 90


def test_no_bootstrap_says_not_computed():
    from tltf.evaluate import metrics_rows

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 50)
    split = evaluate_predictions(labels, rng.random((50, 1)), ["a", "b"], bootstrap=0)
    assert split["auc_ci"] is None  # null in metrics.json, not [NaN, NaN]
    row = dict((r[0], r[1:]) for r in metrics_rows({"val": split, "test": split}))["auc 95% CI"]
    assert row == ("not computed (evaluate.bootstrap: 0)",) * 2
    with_ci = evaluate_predictions(labels, rng.random((50, 1)), ["a", "b"], bootstrap=20)
    assert dict((r[0], r[1:]) for r in metrics_rows({"val": with_ci, "test": with_ci}))["auc 95% CI"][0].startswith("[")
