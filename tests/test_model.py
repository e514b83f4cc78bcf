import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import MOBILENET_WEIGHTS, calibrate_batch_norm, needs_shared

import tltf
from tltf.errors import TltfError, WeightsError
from tltf.layers import ImagePreprocessing
from tltf.models import backbone_of, head_of

RNG = np.random.default_rng(0)


def raw_pixels(n=4, size=32):
    return RNG.uniform(0, 255, (n, size, size, 3)).astype("float32")


def batch_norms(model):
    return [layer for layer in backbone_of(model).layer.layers if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("mode, reference", [
    ("caffe", keras.applications.resnet50.preprocess_input),
    ("tf", keras.applications.mobilenet_v2.preprocess_input),
    ("torch", keras.applications.densenet.preprocess_input),
])
def test_preprocessing_matches_keras_applications(mode, reference):
    x = raw_pixels()
    expected = reference(x.copy())
    assert np.allclose(ImagePreprocessing(mode)(x).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("name, reference", [
    ("mobilenet_v2", keras.applications.mobilenet_v2.preprocess_input),
    ("resnet50", keras.applications.resnet50.preprocess_input),
])
def test_model_takes_raw_pixels_and_applies_the_backbones_preprocessing(name, reference):
    model = tltf.build_model(name, alpha=0.35 if name == "mobilenet_v2" else None, image_size=32, weights=None)
    x = raw_pixels(8)
    calibrate_batch_norm(model, x)
    backbone, head = backbone_of(model).layer, head_of(model)
    output = model(x, training=False).numpy()
    expected = head(backbone(reference(x.copy()), training=False), training=False).numpy()
    unprocessed = head(backbone(x, training=False), training=False).numpy()
    assert output.std() > 0.01  # the output depends on the input, so a difference can show
    assert np.allclose(output, expected, atol=1e-5)
    assert np.abs(output - unprocessed).max() > 0.05  # skipping the preprocessing would be seen
    assert model.output.shape == (None, 1)


def test_multiclass_head_is_softmax():
    model = tltf.build_model("tiny_test", num_classes=4, image_size=16, weights=None, head="mlp", hidden_units=[8])
    probabilities = model(raw_pixels(3, 16)).numpy()
    assert probabilities.shape == (3, 4) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def one_step(model, size=32):
    model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy")
    model.fit(raw_pixels(8, size), RNG.integers(0, 2, (8, 1)).astype("float32"), batch_size=8, epochs=1, verbose=0)


def test_frozen_backbone_is_bit_identical_after_a_step():
    model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=32, weights=None)
    # Input-dependent features: with a constant output and balanced labels the head's gradient is exactly 0.
    calibrate_batch_norm(model, raw_pixels(8))
    backbone_of(model).trainable = False
    before = [w.copy() for w in backbone_of(model).get_weights()]
    head_before = [w.copy() for w in head_of(model).get_weights()]
    one_step(model)
    assert all(np.array_equal(a, b) for a, b in zip(before, backbone_of(model).get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(head_before, head_of(model).get_weights()))


# Randomly initialised MobileNetV2 with inference-mode BN passes ~1e-12 activations,
# so its gradients vanish; the pretrained weights are the realistic case.
@pytest.mark.parametrize("name, weights", [
    ("tiny_test", None),
    pytest.param("mobilenet_v2", str(MOBILENET_WEIGHTS), marks=needs_shared(MOBILENET_WEIGHTS)),
])
def test_frozen_bn_keeps_moving_statistics_even_when_unfrozen(name, weights):
    model = tltf.build_model(name, image_size=32, weights=weights, bn="frozen", alpha=0.35 if weights else None)
    backbone_of(model).trainable = True
    stats = [(bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()) for bn in batch_norms(model)]
    kernels = [w.numpy().copy() for w in backbone_of(model).trainable_weights if "kernel" in w.path]
    one_step(model)
    after = [w.numpy() for w in backbone_of(model).trainable_weights if "kernel" in w.path]
    assert any(not np.array_equal(a, b) for a, b in zip(kernels, after))  # the backbone did train
    for (mean, var), bn in zip(stats, batch_norms(model)):
        assert np.array_equal(mean, bn.moving_mean.numpy()) and np.array_equal(var, bn.moving_variance.numpy())


def test_bn_train_updates_moving_statistics():
    model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=32, weights=None, bn="train")
    mean = batch_norms(model)[0].moving_mean.numpy().copy()
    one_step(model)
    assert not np.array_equal(mean, batch_norms(model)[0].moving_mean.numpy())


def test_bn_momentum_applies_to_every_backbone_batch_norm_and_survives_saving(tmp_path):
    model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=32, weights=None, bn_momentum=0.9)
    assert {bn.momentum for bn in batch_norms(model)} == {0.9} and len(batch_norms(model)) == 52
    model.save(tmp_path / "m.keras")
    assert {bn.momentum for bn in batch_norms(keras.models.load_model(tmp_path / "m.keras"))} == {0.9}


def test_saved_model_loads_with_plain_keras(tmp_path):
    model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=32, weights=None, bn="frozen")
    x = raw_pixels(8)
    calibrate_batch_norm(model, x)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode stays on
    predictions = model.predict(x, verbose=0)
    assert predictions.std() > 0.01  # a load that dropped any weight would change these
    assert np.array_equal(predictions, loaded.predict(x, verbose=0))
    fresh = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=32, weights=None, bn="frozen")
    assert not np.allclose(predictions, fresh.predict(x, verbose=0), atol=1e-3)
    assert backbone_of(loaded).mode == "frozen"


def test_offline_imagenet_weights_error_is_one_line(tmp_path, monkeypatch):
    # An unreachable origin, so the test never touches the network even where there is one.
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.BASE_WEIGHT_PATH", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(WeightsError) as info:
        tltf.build_model("mobilenet_v2", alpha=0.5, image_size=128, weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_128_no_top.h5" in message
    assert os.path.join(os.environ["KERAS_HOME"], "models") in message and "model.weights" in message


@pytest.fixture
def seeded_keras_cache():
    """The shared MobileNetV2-0.35 file under the name Keras looks for at 96 px."""
    cached = (Path(os.environ["KERAS_HOME"]) / "models"
              / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5")
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(MOBILENET_WEIGHTS, cached)
    yield cached
    cached.unlink()


@needs_shared(MOBILENET_WEIGHTS)
def test_imagenet_weights_come_from_the_keras_cache_in_keras_home(seeded_keras_cache):
    cached = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights="imagenet")
    by_path = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights=str(MOBILENET_WEIGHTS))
    pairs = zip(backbone_of(cached).get_weights(), backbone_of(by_path).get_weights())
    assert all(np.array_equal(a, b) for a, b in pairs)
    untrained = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights=None)
    assert not np.array_equal(backbone_of(cached).get_weights()[0], backbone_of(untrained).get_weights()[0])


@needs_shared(MOBILENET_WEIGHTS)
def test_weights_that_do_not_fit_are_one_line():
    with pytest.raises(WeightsError) as info:
        tltf.build_model("densenet121", image_size=32, weights=str(MOBILENET_WEIGHTS))
    assert str(info.value).startswith(f"{MOBILENET_WEIGHTS}: model.weights does not fit densenet121")
    assert "\n" not in str(info.value)


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="model.weights file not found"):
        tltf.build_model("mobilenet_v2", image_size=32, weights=str(tmp_path / "w.h5"))


def test_invalid_alpha_for_imagenet_is_a_user_error():
    with pytest.raises(TltfError, match="mobilenet_v2 cannot be built as configured"):
        tltf.build_model("mobilenet_v2", alpha=0.3, image_size=96, weights="imagenet")


@pytest.mark.parametrize("name", ["resnet50", "resnet50_v2", "mobilenet_v3_small", "efficientnet_b0",
                                  "efficientnet_v2_b0", "convnext_tiny", "densenet121"])
def test_every_family_builds_with_raw_pixel_input(name):
    model = tltf.build_model(name, image_size=32, weights=None)
    out = model(raw_pixels(2), training=False).numpy()
    assert out.shape == (2, 1) and np.all((out >= 0) & (out <= 1))
