"""Calibration: the expected calibration error, temperature and Platt scaling, and a calibration folded into the
delivered model and its export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_recipe

import tltf
from tltf.errors import RecipeError
from tltf.evaluate.calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    logits_of,
    reliability_bins,
)
from tltf.evaluate.evaluator import predict_probabilities
from tltf.evaluate.metrics import roc_auc, youden_threshold
from tltf.export import export_run
from tltf.models.calibration import fold_calibration
from tltf.recipe import load_recipe


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_ece_is_the_count_weighted_gap_between_accuracy_and_confidence_per_bin():
    # Binary, 5 bins: confidences 0.9, 0.9 (bin (0.8, 1]), 0.7 (bin (0.6, 0.8]), 0.6 (bin (0.4, 0.6]).
    labels = np.array([1, 0, 0, 1])
    scores = np.array([0.9, 0.1, 0.3, 0.4])  # decided 1, 0, 0, 0: right, right, right, wrong
    table = reliability_bins(labels, scores, bins=5)
    assert table["count"].tolist() == [0, 0, 1, 1, 2]
    expected = (2 * abs(1.0 - 0.9) + 1 * abs(1.0 - 0.7) + 1 * abs(0.0 - 0.6)) / 4
    assert expected_calibration_error(labels, scores, bins=5) == pytest.approx(expected, abs=1e-12)
    # Multiclass: the confidence is the largest probability, right when its class is the label.
    probabilities = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])
    assert expected_calibration_error([0, 1], probabilities, bins=5) == pytest.approx((0.3 + 0.5) / 2)
    assert np.isnan(expected_calibration_error([0, 1], np.array([0.5, np.nan])))


def test_each_filled_reliability_bin_is_annotated_with_its_count_and_the_few_are_marked():
    from tltf.evaluate.plots import bin_annotations

    labels = np.array([1] * 6 + [0, 1])
    scores = np.array([0.95] * 6 + [0.3, 0.55])  # six in (0.8, 1], one in (0.6, 0.8], one in (0.4, 0.6]
    annotations = bin_annotations(reliability_bins(labels, scores, bins=5))
    assert [(text, few) for _, _, text, few in annotations] == [("n=1", True), ("n=1", True), ("n=6", False)]
    assert annotations[0][:2] == (pytest.approx(0.55), 1.0)  # decided 1 at 0.55, right


def test_ece_is_near_zero_when_the_labels_follow_the_scores_and_large_when_the_scores_overstate():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 50_000)
    labels = (rng.uniform(0, 1, scores.size) < scores).astype(int)
    assert expected_calibration_error(labels, scores) < 0.01
    overconfident = sigmoid(4 * logits_of(scores))  # the same ranking, the probabilities pushed to 0 and 1
    assert expected_calibration_error(labels, overconfident) > 0.1


@pytest.mark.parametrize("classes", [2, 4])
def test_temperature_scaling_recovers_the_temperature_that_made_the_labels(classes):
    rng = np.random.default_rng(1)
    n, temperature = 40_000, 2.5
    if classes == 2:
        logits = rng.normal(0, 3, n)
        labels = (rng.uniform(0, 1, n) < sigmoid(logits / temperature)).astype(int)
        scores = sigmoid(logits)
    else:
        logits = rng.normal(0, 3, (n, classes))
        truth = np.exp(logits / temperature)
        truth /= truth.sum(axis=1, keepdims=True)
        labels = np.array([rng.choice(classes, p=p) for p in truth])
        scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    calibration = fit_calibration(labels, scores, "temperature")
    assert calibration.temperature == pytest.approx(temperature, rel=0.05)
    before = expected_calibration_error(labels, scores)
    assert expected_calibration_error(labels, calibration.apply(scores)) < 0.5 * before
    assert np.array_equal(calibration.apply(scores).argmax(-1) if classes > 2 else calibration.apply(scores) >= 0.5,
                          scores.argmax(-1) if classes > 2 else scores >= 0.5)


def test_platt_scaling_recovers_a_scale_and_a_shift_and_refuses_several_classes():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, 40_000)
    labels = (rng.uniform(0, 1, logits.size) < sigmoid(0.5 * logits - 1.0)).astype(int)
    calibration = fit_calibration(labels, sigmoid(logits), "platt")
    assert calibration.scale == pytest.approx(0.5, abs=0.03) and calibration.shift == pytest.approx(-1.0, abs=0.05)
    with pytest.raises(ValueError, match="binary"):
        fit_calibration([0, 1], np.array([[0.6, 0.4], [0.3, 0.7]]), "platt")
    with pytest.raises(ValueError, match="backwards"):  # a model that ranks the labels in reverse
        fit_calibration(labels, sigmoid(-logits), "platt")


@pytest.mark.parametrize("classes", [2, 3])
def test_a_folded_calibration_makes_the_model_output_the_calibrated_probabilities(classes):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    units, activation = (1, "sigmoid") if classes == 2 else (classes, "softmax")
    model = keras.Model(inputs, keras.layers.Dense(units, activation=activation, name="logit")(hidden))
    output = model.get_layer("logit")
    output.bias.assign(np.linspace(-0.5, 0.8, units))  # a trained layer's bias is not zero
    features = np.random.default_rng(3).normal(0, 3, (300, 6)).astype("float32")
    before = model.predict(features, verbose=0).astype(np.float64)
    before = before[:, 0] if classes == 2 else before
    calibration = Calibration("temperature", 0.4) if classes > 2 else Calibration("platt", 0.4, 0.7)
    fold_calibration(model, calibration)
    after = model.predict(features, verbose=0).astype(np.float64)
    after = after[:, 0] if classes == 2 else after
    assert np.abs(after - calibration.apply(before)).max() < 1e-5
    labels = np.random.default_rng(4).integers(0, classes, len(features))
    if classes == 2:
        assert roc_auc(labels, after) == roc_auc(labels, before)  # a positive scale keeps every ranking
    else:
        assert np.array_equal(after.argmax(1), before.argmax(1))


def test_a_model_that_does_not_end_in_a_sigmoid_or_softmax_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="sigmoid or softmax"):
        fold_calibration(model, Calibration("temperature", 0.5))
    # Platt's intercept needs a bias; refused, the layer is left exactly as it was.
    no_bias = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid", use_bias=False)])
    before = no_bias.layers[-1].kernel.numpy().copy()
    with pytest.raises(ValueError, match="no bias"):
        fold_calibration(no_bias, Calibration("platt", 0.5, 0.3))
    assert np.array_equal(no_bias.layers[-1].kernel.numpy(), before)


def test_calibrate_model_fits_on_held_out_images_and_folds_it_into_any_keras_classifier():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="logit")(pooled))
    model.get_layer("logit").kernel.assign(np.full((3, 1), 4.0))  # brightness → a confident positive score
    model.get_layer("logit").bias.assign([-6.0])
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (200, 8, 8, 3)).astype(np.uint8)
    labels = (rng.uniform(size=200) < 0.5).astype(int)  # the score is overconfident: labels ignore it
    before = predict_probabilities(model, images)
    calibration = tltf.evaluate.calibrate_model(model, images, labels)
    assert calibration == fit_calibration(labels, before, "temperature") and calibration.temperature > 1
    assert np.abs(predict_probabilities(model, images) - calibration.apply(before)).max() < 1e-5


def overlapping_npz(path):
    """Grey 16 px images whose class moves the brightness by less than the images vary."""
    rng = np.random.default_rng(5)
    arrays = {}
    for split, n in (("train", 96), ("val", 64), ("test", 64)):
        labels = np.arange(n) % 2
        brightness = 110 + 20 * labels + rng.normal(0, 20, n)  # each image's own exposure blurs the classes
        images = brightness[:, None, None] + rng.normal(0, 10, (n, 16, 16))
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images.clip(0, 255).astype(np.uint8), labels
    np.savez(path, **arrays)
    return path


def test_a_calibrated_run_delivers_calibrated_probabilities_with_the_same_auc(tmp_path):
    """Two same-seed runs (no augmentation: the same weights without deterministic mode, which would stay on
    for the rest of the test process), one with `evaluate.calibrate: temperature`: the calibrated run's model,
    predictions and export are the other run's probabilities calibrated, its AUC is the same and its threshold is chosen
    on the calibrated val scores."""
    runs, data = {}, overlapping_npz(tmp_path / "overlap.npz")
    for method in ("none", "temperature"):
        path = write_recipe(tmp_path / f"{method}.yaml", {"source": "npz", "path": str(data)},
                            train={"epochs": 2}, evaluate={"calibrate": method})
        runs[method] = tltf.fit(load_recipe(path), tmp_path / method, verbose=0).metrics
    plain, calibrated = runs["none"], runs["temperature"]
    assert 0.6 < plain["test"]["auc"] < 0.99  # classes that overlap: the AUC it keeps is not a trivial 1
    assert calibrated["calibration"]["method"] == "temperature" and calibrated["calibration"]["fitted_on"] == "val"
    calibration = Calibration("temperature", 1 / calibrated["calibration"]["temperature"])
    assert calibration.temperature != pytest.approx(1.0, abs=1e-3)
    for split in ("val", "test"):
        assert calibrated[split]["auc"] == plain[split]["auc"]
        assert calibrated[split]["ece_uncalibrated"] == pytest.approx(plain[split]["ece"], abs=1e-6)
        labels, scores = tltf.evaluate.read_predictions(tmp_path / "temperature", split)
        _, plain_scores = tltf.evaluate.read_predictions(tmp_path / "none", split)
        assert np.abs(scores - calibration.apply(plain_scores)).max() < 1e-5
        assert calibrated[split]["ece"] == pytest.approx(expected_calibration_error(labels, scores), abs=1e-9)
    val_labels, val_scores = tltf.evaluate.read_predictions(tmp_path / "temperature", "val")
    assert calibrated["val"]["threshold"] == pytest.approx(youden_threshold(val_labels, val_scores), abs=1e-6)
    report = (tmp_path / "temperature" / "report.md").read_text()
    assert "temperature scaling (T = " in report and "| ECE before calibration |" in report
    assert (tmp_path / "temperature" / "reliability.png").stat().st_size > 0
    # The export serves the calibrated probabilities.
    exported = export_run(tmp_path / "temperature", tmp_path / "serving")
    served = tf.saved_model.load(str(exported.version_dir)).signatures["serving_default"]
    images = np.load(data)["test_images"][:8]
    images = np.repeat(images[..., None], 3, axis=-1).astype("float32")
    model = keras.models.load_model(tmp_path / "temperature" / "model.keras")
    expected = predict_probabilities(model, images)
    assert np.abs(served(images=tf.constant(images))["probabilities"].numpy() - expected).max() < 1e-5
    written = json.loads((tmp_path / "temperature" / "metrics.json").read_text())
    assert written["calibration"] == calibrated["calibration"]


def test_platt_scaling_on_several_classes_is_a_recipe_error_before_anything_is_written(tmp_path):
    from conftest import separable_images

    arrays = {}
    for split, n, seed in (("train", 30, 0), ("val", 15, 1)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = separable_images(n, 16, num_classes=3, seed=seed)
    np.savez(tmp_path / "three.npz", **arrays)
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(tmp_path / "three.npz")},
                        evaluate={"calibrate": "platt"})
    with pytest.raises(RecipeError, match="evaluate.calibrate: platt scaling is for two classes and the data has 3"):
        tltf.fit(load_recipe(path), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
