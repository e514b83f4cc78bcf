import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import roc_auc_score

from tltf.evaluate.metrics import (
    binary_rates,
    bootstrap_auc_ci,
    confusion_matrix,
    evaluate_predictions,
    macro_auc,
    roc_auc,
    youden_threshold,
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
    def youden(t):
        return sum(binary_rates(labels, scores, t)[k] for k in ("sensitivity", "specificity"))

    best = max(np.unique(scores), key=youden)
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


def correlated_scores(n: int, seed: int, shift_b: float):
    """Two models' scores that share each image's difficulty (correlated), model b `shift_b` better."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    difficulty = rng.normal(0, 1, n)
    a = labels * 1.0 + difficulty + rng.normal(0, 0.7, n)
    b = labels * (1.0 + shift_b) + difficulty + rng.normal(0, 0.7, n)
    return labels, a, b


def test_delong_aucs_are_the_rank_aucs_and_its_variance_matches_a_paired_bootstrap():
    from tltf.evaluate.paired import delong_test

    labels, a, b = correlated_scores(400, 0, 0.3)
    result = delong_test(labels, a, b)
    assert result.auc_a == pytest.approx(roc_auc_score(labels, a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(labels, b), abs=1e-12)
    assert result.difference == pytest.approx(result.auc_b - result.auc_a)
    delong_sd = (result.ci[1] - result.ci[0]) / (2 * 1.959964)
    rng = np.random.default_rng(1)
    differences = []
    for _ in range(2000):
        rows = rng.integers(0, 400, 400)
        differences.append(roc_auc_score(labels[rows], b[rows]) - roc_auc_score(labels[rows], a[rows]))
    assert delong_sd == pytest.approx(np.std(differences), rel=0.1)
    # The pairing matters: the unpaired variance (the two AUCs' own variances summed) is much larger here.
    unpaired = np.var([roc_auc_score(labels[r], a[r]) for r in rng.integers(0, 400, (500, 400))]) * 2
    assert delong_sd ** 2 < 0.6 * unpaired


def test_delong_finds_a_real_difference_and_not_an_absent_one():
    from tltf.evaluate.paired import delong_test

    better = delong_test(*correlated_scores(600, 2, 0.6))
    assert better.difference > 0 and better.ci[0] > 0 and better.p < 0.01
    labels, a, _ = correlated_scores(600, 3, 0.0)
    same = delong_test(labels, a, a)
    assert (same.difference, same.ci, same.p) == (0.0, [0.0, 0.0], 1.0)
    flipped = delong_test(labels, a, -a)
    assert flipped.difference == pytest.approx(1 - 2 * flipped.auc_a) and flipped.p < 1e-6


def test_paired_bootstrap_on_multiclass_probabilities():
    from tltf.evaluate.paired import paired_bootstrap

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 300)
    good = np.eye(3)[labels] * 2 + rng.normal(0, 1, (300, 3))
    worse = np.eye(3)[labels] * 0.5 + rng.normal(0, 1, (300, 3))
    result = paired_bootstrap(labels, worse, good, samples=500)
    assert result.method == "paired_bootstrap" and result.difference > 0 and result.ci[0] > 0 and result.p < 0.01
    assert paired_bootstrap(labels, good, good, samples=50).ci == [0.0, 0.0]
