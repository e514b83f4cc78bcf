"""Domain-adversarial training end to end on small generated domains."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tltf
from conftest import separable_images, write_recipe
from fixtures.shifted_domain import shift_domain
from tltf.adapt import DomainAdversarialModel, GradientReversalSchedule
from tltf.export import export_run
from tltf.recipe import load_recipe


def shifted(images: np.ndarray, seed: int = 0) -> np.ndarray:
    grey = images[..., 0] if images.ndim == 4 else images
    return shift_domain(grey, seed)


@pytest.fixture
def domains(tmp_path):
    source, target = {}, {}
    for split, n, seed in (("train", 64, 0), ("val", 24, 1), ("test", 24, 2)):
        images, labels = separable_images(n, 16, seed=seed)
        source[f"{split}_images"], source[f"{split}_labels"] = images, labels
        other, other_labels = separable_images(n, 16, seed=seed + 10)
        target[f"{split}_images"], target[f"{split}_labels"] = shifted(other, seed), other_labels
    np.savez(tmp_path / "source.npz", **source)
    np.savez(tmp_path / "target.npz", **target)
    return tmp_path / "source.npz", tmp_path / "target.npz"


def test_zipped_fit_under_the_default_strategy():
    with tf.distribute.get_strategy().scope():
        model = tltf.build_model("tiny_test", image_size=16, weights=None)
        dann = DomainAdversarialModel(model, hidden_units=[8], dropout=0.0)
        dann.compile(optimizer=keras.optimizers.AdamW(1e-3))
    images, labels = separable_images(32, 16, channels=3)
    source = tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels[:, None].astype("float32")))
    target_images = np.repeat(shifted(images)[..., None], 3, axis=-1).astype("float32")
    target = tf.data.Dataset.from_tensor_slices(target_images).repeat()
    history = dann.fit(tf.data.Dataset.zip((source.batch(8), target.batch(8))), epochs=2, verbose=0, shuffle=False,
                       callbacks=[GradientReversalSchedule(dann.reversal, total_steps=8)])
    assert set(history.history) >= {"loss", "auc", "domain_accuracy", "domain_loss", "lambda"}
    assert history.history["lambda"][-1] == pytest.approx(tltf.adapt.ganin_lambda(7 / 8))
    # The domain head trains; the classifier's own variables do not include it.
    assert len(dann.trainable_variables) > len(model.trainable_variables)


def test_recipe_reports_target_metrics_baseline_and_a_distance(tmp_path, domains):
    source, target = domains
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(source)},
                        train={"epochs": 2})
    recipe = load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}",
                                "adaptation.compare_source_only=true", "adaptation.domain_head.hidden=[8]"])
    result = tltf.fit(recipe, tmp_path / "run", log=lambda _: None, verbose=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("target", "target_source_only"):
        assert set(metrics[key]) == {"auc", "accuracy"} and 0 <= metrics[key]["accuracy"] <= 1
    assert set(metrics["a_distance"]) == {"before", "after"}
    assert all(0 <= v <= 2 for v in metrics["a_distance"].values())
    assert (tmp_path / "run" / "embedding.png").exists()
    assert "Domain adaptation" in (tmp_path / "run" / "report.md").read_text()
    assert result.metrics["target"] == metrics["target"]
    # The shipped model is the task path only, and it reloads with its optimizer state and no warning.
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert not any("domain" in layer.name for layer in model.layers)
    exported = export_run(tmp_path / "run", tmp_path / "serving", log=lambda *_: None)
    assert exported.parity.ok
    loaded = tf.saved_model.load(str(exported.version_dir))
    assert not any("domain" in v.name for v in loaded.variables)


def test_directory_target_is_transductive(tmp_path, domains):
    source, _ = domains
    images, labels = separable_images(12, 16, seed=5)
    for i, (image, label) in enumerate(zip(shifted(images), labels)):
        folder = tmp_path / "target" / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    from tltf.adapt.target import load_target
    from tltf.recipe import validate_recipe

    recipe = validate_recipe({"data": {"source": "npz", "path": str(source)},
                              "adaptation": {"target": {"source": "directory", "path": str(tmp_path / "target")}}})
    target = load_target(recipe.adaptation.target, 16, ["class_0", "class_1"])
    assert len(target.images) == 12 and target.evaluation.images is target.images
    assert sorted(np.bincount(target.evaluation.labels)) == [6, 6]


def test_dann_saves_loads_and_resumes_its_lambda_schedule(tmp_path):
    model = tltf.build_model("tiny_test", image_size=16, weights=None)
    dann = DomainAdversarialModel(model, hidden_units=[8], dropout=0.0)
    dann.compile(optimizer=keras.optimizers.AdamW(1e-3))
    images, labels = separable_images(32, 16, channels=3)
    source = tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels[:, None].astype("float32")))
    target = tf.data.Dataset.from_tensor_slices(images.astype("float32")).repeat()
    data = tf.data.Dataset.zip((source.batch(8), target.batch(8)))
    dann.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[GradientReversalSchedule(dann.reversal, 8)])
    dann.save(tmp_path / "dann.keras")
    loaded = keras.models.load_model(tmp_path / "dann.keras")
    assert int(loaded.optimizer.iterations.numpy()) == 4
    assert float(loaded.reversal.lambda_.numpy()) == pytest.approx(tltf.adapt.ganin_lambda(3 / 8))
    loaded.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[GradientReversalSchedule(loaded.reversal, 8)])
    assert float(loaded.reversal.lambda_.numpy()) == pytest.approx(tltf.adapt.ganin_lambda(7 / 8))


def kernels(model):
    return [v.numpy().copy() for v in tltf.backbone_of(model).weights if v.name in ("kernel", "gamma", "beta")]


def test_feature_extraction_adapts_the_mlp_head_features(tmp_path, domains):
    source, target = domains
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(source)},
                        train={"strategy": "feature_extraction", "epochs": 2},
                        model={"head": "mlp", "hidden_units": [8]})
    recipe = load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}",
                                "adaptation.domain_head.hidden=[4]"])
    assert recipe.adaptation.features == "head"
    backbone_before = None

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            nonlocal backbone_before
            backbone_before = kernels(self.model.classifier)

    result = tltf.fit(recipe, tmp_path / "run", log=lambda _: None, verbose=0, callbacks=[Snapshot()])
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert all(np.array_equal(a, b) for a, b in zip(backbone_before, kernels(model)))
    assert "target" in result.metrics
    with pytest.raises(tltf.errors.RecipeError, match="adaptation.features: 'head' adapts the mlp head"):
        load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}", "model.head=linear"])
