"""Domain-adversarial training end to end on small generated domains."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_adversarial_step, separable_images, write_recipe
from fixtures.shifted_domain import shift_domain
from PIL import Image

import tltf
from tltf.adapt import DomainAdversarialModel, GradientReversalSchedule
from tltf.export import export_run
from tltf.recipe import load_recipe


def shifted(images: np.ndarray, seed: int = 0) -> np.ndarray:
    grey = images[..., 0] if images.ndim == 4 else images
    return shift_domain(grey, seed)


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


def target_metrics(model_path, target_npz):
    """Target AUC and accuracy at 0.5, recomputed here from a saved model and the target's test split."""
    from tltf.evaluate.metrics import roc_auc

    with np.load(target_npz) as archive:
        images, labels = archive["test_images"], archive["test_labels"]
    pixels = np.repeat(images[..., None], 3, axis=-1).astype("float32")
    probabilities = keras.models.load_model(model_path).predict(pixels, verbose=0)[:, 0]
    return {"auc": roc_auc(labels, probabilities), "accuracy": float(((probabilities >= 0.5) == labels).mean())}


def test_recipe_reports_target_metrics_baseline_and_a_distance(tmp_path, domains):
    source, target = domains
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(source)},
                        train={"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {"epochs": 1}})
    recipe = load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}", "adaptation.method=dann",
                                "adaptation.compare_source_only=true", "adaptation.domain_head.hidden=[8]"])
    result = tltf.fit(recipe, tmp_path / "run", verbose=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # The reported numbers are the saved models' own, recomputed independently on the target's test images.
    for key, model_path in (("target", "model.keras"), ("target_source_only", "source_only/model.keras")):
        expected = target_metrics(tmp_path / "run" / model_path, target)
        assert metrics[key] == pytest.approx(expected, abs=1e-6), key
    assert result.metrics["target"] == pytest.approx(metrics["target"])
    # λ stays 0 while only the head trains (the warm-up epoch), then ramps up.
    history = np.genfromtxt(tmp_path / "run" / "history.csv", delimiter=",", names=True)
    assert history["lambda"][0] == 0.0 and all(history["lambda"][1:] > 0)
    assert set(metrics["a_distance"]) == {"before", "after"}
    assert (tmp_path / "run" / "embedding.png").exists()
    assert "Domain adaptation" in (tmp_path / "run" / "report.md").read_text()
    # The shipped model is the task path only, and it reloads with its optimizer state and no warning.
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert not any("domain" in layer.name for layer in model.layers)
    exported = export_run(tmp_path / "run", tmp_path / "serving")
    assert exported.parity.ok
    loaded = tf.saved_model.load(str(exported.version_dir))
    assert not any("domain" in v.name for v in loaded.variables)


def test_proxy_a_distance_tells_same_from_separable_domains():
    from tltf.adapt.evaluation import proxy_a_distance

    rng = np.random.default_rng(0)
    same = proxy_a_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)))
    apart = proxy_a_distance(rng.normal(size=(400, 8)), rng.normal(3.0, size=(400, 8)))
    halfway = proxy_a_distance(rng.normal(size=(400, 8)), rng.normal(0.25, size=(400, 8)))
    assert same < 0.3 and apart > 1.9 and same < halfway < apart


@pytest.mark.parametrize("features", ["backbone", "head"])
def test_train_step_reverses_the_domain_gradient_into_the_classifier(features):
    """After one SGD step, each classifier variable moved by -lr·(g_task − λ·g_domain) and each domain-head
    variable by -lr·g_domain, with the gradients computed here without the reversal layer."""
    model = tltf.build_model("tiny_test", image_size=16, weights=None, head="mlp", hidden_units=[8], dropout=0.0,
                             bn="frozen")
    dann = DomainAdversarialModel(model, hidden_units=[8], dropout=0.0, features=features)
    dann.compile(optimizer=keras.optimizers.SGD(0.1))
    dann.reversal.lambda_.assign(0.5)
    images, labels = separable_images(8, 16, channels=3)
    source, target = images.astype("float32"), shifted(images)[..., None].repeat(3, -1).astype("float32")
    labels = labels[:, None].astype("float32")
    classifier_vars = model.trainable_variables
    domain_vars = dann.domain_head.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        predictions, features_out = dann.twin(np.concatenate([source, target]), training=True)
        task_loss = dann.task_loss(labels, predictions[:8])
        domains = np.concatenate([np.zeros((8, 1)), np.ones((8, 1))]).astype("float32")
        domain_loss = tf.reduce_mean(dann.domain_loss(domains, dann.domain_head(features_out, training=True)))
    task_grads = tape.gradient(task_loss, classifier_vars)
    domain_grads = tape.gradient(domain_loss, classifier_vars + domain_vars)
    assert_adversarial_step(dann, ((tf.constant(source), tf.constant(labels)), tf.constant(target)), classifier_vars,
                            domain_vars, task_grads, domain_grads, lam=0.5, lr=0.1)
    hidden = model.get_layer("head").get_layer("head_hidden_0").kernel
    hidden_domain = domain_grads[[v is hidden for v in classifier_vars].index(True)]
    # Adapting the head's features puts the domain gradient on its hidden layer; adapting the backbone does not.
    assert (hidden_domain is not None and np.abs(hidden_domain.numpy()).max() > 1e-6) == (features == "head")


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
    recipe = load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}", "adaptation.method=dann",
                                "adaptation.domain_head.hidden=[4]", "adaptation.compare_source_only=false"])
    assert recipe.adaptation.features == "head"
    backbone_before = None

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            nonlocal backbone_before
            backbone_before = kernels(self.model.classifier)

    result = tltf.fit(recipe, tmp_path / "run", verbose=0, callbacks=[Snapshot()])
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert all(np.array_equal(a, b) for a, b in zip(backbone_before, kernels(model)))
    assert "target" in result.metrics
    with pytest.raises(tltf.errors.RecipeError, match="adaptation.features: 'head' adapts the mlp head"):
        load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}", "adaptation.method=dann",
                           "model.head=linear"])
    # AdaBN (the default method) adapts the frozen backbone's statistics: no domain classifier, any head.
    adabn = load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}", "model.head=linear"])
    assert adabn.adaptation.method == "adabn"
