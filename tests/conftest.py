"""Shared fixtures: a tiny real backbone, small generated datasets, ../shared assets."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Keras reads KERAS_HOME once, at import: give the whole session its own empty
# cache, so no test sees or fills the developer's ~/.keras.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="tltf-tests-keras-home-")

import keras  # noqa: E402
from keras import ops  # noqa: E402

import tltf  # noqa: E402,F401  (quiet TF import, registrations)
from tltf.models.backbones import BackboneSpec, register_backbone  # noqa: E402
from tltf.train.callbacks.batch_norm_calibration import calibrate_batch_norm as product_calibration  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PNEUMONIA_NPZ = SHARED / "data" / "pneumoniamnist.npz"
MOBILENET_WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


def needs_shared(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is absent (../shared holds the real test assets)")


@keras.saving.register_keras_serializable(package="tltf_tests")
class CountImages(keras.layers.Layer):
    """Identity that counts the images passing through it (a real layer, not a mock)."""

    def build(self, input_shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

    def call(self, x):
        self.count.assign_add(ops.cast(ops.shape(x)[0], "float32"))
        return x


def tiny_backbone(input_shape, weights=None):
    """A two-block conv net with BatchNorm, in the keras.applications calling style."""
    inputs = keras.Input(input_shape)
    x = CountImages(name="count_images")(inputs)
    for block, filters in enumerate((4, 8), start=1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"block{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, x, name="tiny")
    if weights is not None:
        model.load_weights(weights)
    return model


register_backbone(BackboneSpec("tiny_test", tiny_backbone, "tf", "tiny", min_size=8))


@functools.cache
def tiny_pretrained_weights() -> str:
    """A weights file for `tiny_test`, standing in for pretrained weights: tltf treats `model.weights: none`
    as training from scratch (every strategy runs as fine_tune), so recipes that test the other strategies
    name a file. Its BatchNorm statistics come from real batches, so a frozen backbone's output depends on
    its input."""
    folder = Path(tempfile.mkdtemp(prefix="tltf-tests-"))
    keras.utils.set_random_seed(0)
    backbone = tiny_backbone((16, 16, 3))
    images = separable_images(64, 16, channels=3)[0].astype("float32") / 127.5 - 1  # the "tf" preprocessing
    product_calibration(backbone, [images])
    path = folder / "tiny_test.weights.h5"
    backbone.save_weights(path)
    return str(path)


def images_seen(model) -> int:
    from tltf.models import backbone_of

    return int(backbone_of(model).layer.get_layer("count_images").count.numpy())


def calibrate_batch_norm(model, images) -> None:
    """Sets every BatchNorm's moving statistics to the batch statistics of `images`.

    A randomly initialised keras.applications backbone in inference mode passes
    activations of ~1e-11, so its output is a constant 0.5 whatever the input,
    and an equality or parity test on it cannot see anything. With moving
    statistics taken from real batches the output depends on the input.
    """
    from tltf.models import backbone_of

    policy = backbone_of(model)
    mode, policy.mode = policy.mode, "train"  # frozen BatchNorm would keep its statistics
    try:
        product_calibration(model, [images])
    finally:
        policy.mode = mode


def separable_images(n: int, size: int, num_classes: int = 2, seed: int = 0, channels: int = 1):
    """uint8 images whose brightness depends on the class, so a tiny net learns them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    base = 40 + 160 * labels / max(num_classes - 1, 1)
    images = base[:, None, None, None] + rng.normal(0, 25, (n, size, size, channels))
    images = np.clip(images, 0, 255).astype(np.uint8)
    if channels == 1:
        images = images[..., 0]
    return images, labels


tiny_pretrained_weights()  # now, before any test: it seeds Keras' global generator


def write_domain_pair(root: Path) -> tuple[Path, Path]:
    """`source.npz` and `target.npz` under `root`: separable grey 16 px images, and the same images as another
    scanner would show them (`fixtures.shifted_domain`), for domain adaptation."""
    from fixtures.shifted_domain import shift_domain

    source, target = {}, {}
    for split, n, seed in (("train", 64, 0), ("val", 24, 1), ("test", 24, 2)):
        images, labels = separable_images(n, 16, seed=seed)
        source[f"{split}_images"], source[f"{split}_labels"] = images, labels
        target[f"{split}_images"], target[f"{split}_labels"] = shift_domain(images, seed), labels
    np.savez(root / "source.npz", **source)
    np.savez(root / "target.npz", **target)
    return root / "source.npz", root / "target.npz"


@pytest.fixture
def npz_path(tmp_path) -> Path:
    """A MedMNIST-layout npz: grey 16 px, train/val/test, binary."""
    arrays = {}
    for split, n, seed in (("train", 64, 0), ("val", 24, 1), ("test", 24, 2)):
        images, labels = separable_images(n, 16, seed=seed)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    path = tmp_path / "tiny.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def imagenet_cache():
    """The shared MobileNetV2-0.35 weights in the test session's Keras cache, put there by `tltf weights add`'s
    function as README's offline setup does (and taken out again); skips when ../shared is absent."""
    from tltf.models.weights_cache import add_weights

    if not MOBILENET_WEIGHTS.exists():
        pytest.skip(f"{MOBILENET_WEIGHTS} is absent (../shared holds the real test assets)")
    added = add_weights(MOBILENET_WEIGHTS)
    yield added.cache
    for cached in added.written:
        cached.unlink()


@pytest.fixture
def tltf_log():
    """The lines the `tltf` logger emits during the test (it also keeps printing them)."""
    import logging

    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("tltf")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.fixture
def domains(tmp_path):
    """A source npz and a target npz (the same kind of images as another scanner records them), 16 px grey,
    train 64 / val 24 / test 24 each: two domains for adaptation tests."""
    from fixtures.shifted_domain import shift_domain

    source, target = {}, {}
    for split, n, seed in (("train", 64, 0), ("val", 24, 1), ("test", 24, 2)):
        images, labels = separable_images(n, 16, seed=seed)
        source[f"{split}_images"], source[f"{split}_labels"] = images, labels
        other, other_labels = separable_images(n, 16, seed=seed + 10)
        target[f"{split}_images"], target[f"{split}_labels"] = shift_domain(other, seed), other_labels
    np.savez(tmp_path / "source.npz", **source)
    np.savez(tmp_path / "target.npz", **target)
    return tmp_path / "source.npz", tmp_path / "target.npz"


def assert_adversarial_step(wrapper, batch, classifier_vars, domain_vars, task_grads, domain_grads, lam, lr):
    """After `wrapper.train_step(batch)` with SGD(lr): each classifier variable moved by −lr·(g_task − λ·g_domain)
    and each domain-head variable by −lr·g_domain (gradients computed by the caller without the reversal), and
    the domain gradient did reach the classifier somewhere, so the sign was checked."""
    before = [v.numpy().copy() for v in classifier_vars + domain_vars]
    wrapper.train_step(batch)
    reversed_somewhere = False
    for i, variable in enumerate(classifier_vars + domain_vars):
        g_domain = domain_grads[i].numpy() if domain_grads[i] is not None else 0.0
        if i < len(classifier_vars):
            g_task = task_grads[i].numpy() if task_grads[i] is not None else 0.0
            expected = before[i] - lr * (g_task - lam * g_domain)
            reversed_somewhere |= bool(np.abs(g_domain).max() > 1e-6)
        else:
            expected = before[i] - lr * g_domain
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4, atol=1e-6, err_msg=variable.path)
    assert reversed_somewhere


def write_recipe(path: Path, data: dict, **sections) -> Path:
    import yaml

    recipe = {
        "name": "tiny",
        "data": {"image_size": 16, **data},
        "model": {"backbone": "tiny_test", "weights": tiny_pretrained_weights(), "bn": "train", "bn_momentum": 0.9,
                  "dropout": 0.0},
        # Validation after every epoch: these runs are a few steps an epoch, and their tests count epochs.
        "train": {"strategy": "fine_tune", "epochs": 2, "batch_size": 16, "lr": 1e-2, "seed": 1,
                  "validate_every_steps": 1},
        "evaluate": {"bootstrap": 50},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    path.write_text(yaml.safe_dump(recipe))
    return path


def assert_delivered_by_dev_or_its_fallback(metrics, history) -> None:
    """An adapted run chose by DEV among the epochs it could judge, or by source validation when there were none."""
    judged, trusted = metrics["adaptation"], np.asarray(history["dev_trusted"], bool)
    if trusted.any():
        expected = int(np.nanargmin(np.where(trusted, history["dev_risk"], np.nan))) + 1
        assert judged["delivered_by"] == "dev" and judged["selection"]["dev"]["epoch"] == expected
    else:
        expected = int(np.argmax(history["val_auc"])) + 1
        assert judged["delivered_by"] == "source_val" and "dev" not in judged["selection"]
    assert metrics["best_epoch"] == expected
