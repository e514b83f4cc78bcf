"""Grad-CAM: on a task whose label is a patch in one corner, the heat map is in that corner; in the run's report,
from `tltf saliency` on a run and on its export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import write_recipe
from PIL import Image

import tltf
from tltf.cli.main import main
from tltf.export import export_run
from tltf.recipe import load_recipe
from tltf.run_dir import load_run_model
from tltf.saliency import GradCam, telling_examples

SIZE, PATCH = 32, 10


def corner_patch_images(n: int, seed: int):
    """Grey noise; the positive images (half) have a bright square in the top-left corner, nothing else differs."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.normal(100, 30, (n, SIZE, SIZE)).clip(0, 255)
    images[labels == 1, :PATCH, :PATCH] = 230
    return images.astype(np.uint8), labels


@pytest.fixture(scope="module")
def corner_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corner")
    arrays = {}
    for split, n, seed in (("train", 160, 0), ("val", 40, 1), ("test", 40, 2)):
        images, labels = corner_patch_images(n, seed)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(root / "corner.npz", **arrays)
    recipe = write_recipe(root / "corner.yaml", {"source": "npz", "path": str(root / "corner.npz"), "image_size": SIZE},
                          train={"epochs": 6, "lr": 2e-2})
    result = tltf.fit(load_recipe(recipe), root / "run", verbose=0)
    assert result.metrics["test"]["auc"] > 0.95  # it learned the patch, so there is something to see
    return root, arrays


def corner_mass(maps) -> np.ndarray:
    """Each map's share of its mass in the top-left quadrant (a quarter of the image)."""
    half = SIZE // 2
    return maps[:, :half, :half].sum(axis=(1, 2)) / np.maximum(maps.sum(axis=(1, 2)), 1e-12)


def test_the_evidence_for_the_patch_class_is_in_the_patch_corner(corner_run):
    root, arrays = corner_run
    model = load_run_model(root / "run")
    positives = np.repeat(arrays["test_images"][arrays["test_labels"] == 1][..., None], 3, axis=-1)
    maps, probabilities = GradCam(model)(positives, target_class=1)
    assert maps.shape == (len(positives), SIZE, SIZE) and maps.min() >= 0 and maps.max() <= 1
    assert np.allclose(probabilities, model.predict(positives.astype("float32"), verbose=0)[:, 0], atol=1e-5)
    share = corner_mass(maps)
    print("top-left share of each map:", np.round(share, 2))
    assert np.median(share) > 0.6, share  # a map spread evenly would put 0.25 there
    # The evidence for "no patch" on the same images is anywhere but the patch: the gradient's sign matters.
    against, _ = GradCam(model)(positives, target_class=0)
    print("top-left share of the maps for class 0:", np.round(corner_mass(against), 2))
    assert np.median(corner_mass(against)) < 0.25


def test_the_run_report_shows_the_most_confident_right_and_wrong_decisions(corner_run):
    root, _ = corner_run
    report = (root / "run" / "report.md").read_text()
    assert "![saliency](saliency.png)" in report
    assert Image.open(root / "run" / "saliency.png").size[0] > 100
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.6, 0.2, 0.7, 0.3, 0.05])
    chosen = telling_examples(labels, scores, 0.5, ["normal", "pneumonia"])
    assert [index for _, index in chosen] == [0, 1, 5, 2, 3, 4]
    assert chosen[4][0] == "false positive: normal → pneumonia, p 0.70"


def test_saliency_cli_on_a_run_and_on_its_export_gives_the_same_maps(corner_run, tmp_path):
    root, arrays = corner_run
    for i in range(3):
        Image.fromarray(arrays["test_images"][i]).save(tmp_path / f"xray{i}.png")
    runner = CliRunner()
    from_run = runner.invoke(main, ["saliency", str(root / "run"), str(tmp_path / "xray*.png"), "--out",
                                    str(tmp_path / "from_run")])
    assert from_run.exit_code == 0, from_run.output
    assert "3 saliency maps written to" in from_run.output
    exported = export_run(root / "run", tmp_path / "serving", verify=False)
    signature = tf.saved_model.load(str(exported.version_dir)).signatures["saliency"]
    images = np.repeat(arrays["test_images"][:6][..., None], 3, axis=-1).astype("float32")
    served = signature(images=tf.constant(images))
    in_process, probabilities = GradCam(load_run_model(root / "run"))(images)
    assert np.abs(served["saliency"].numpy() - in_process).max() < 1e-4
    assert np.abs(served["probabilities"].numpy() - probabilities).max() < 1e-5
    from_export = runner.invoke(main, ["saliency", str(exported.version_dir.parent), str(tmp_path / "xray*.png"),
                                       "--out",
                                       str(tmp_path / "from_export")])
    assert from_export.exit_code == 0, from_export.output
    for i in range(3):
        a = np.asarray(Image.open(tmp_path / "from_run" / f"xray{i}_saliency.png"), np.int16)
        b = np.asarray(Image.open(tmp_path / "from_export" / f"xray{i}_saliency.png"), np.int16)
        assert a.shape[1] >= 700 and a.shape == b.shape  # a readable figure
        # The same figure: the maps agree within 1e-4 (above), which may move a rare pixel across a colour step.
        assert np.mean(np.abs(a - b).max(axis=-1) > 1) < 1e-3
    # what the figures say the model decided: the same class and probability from the run and from its export
    from tltf.export.saliency_files import _saliency_source

    decided = {}
    for name, target in (("run", root / "run"), ("export", exported.version_dir.parent)):
        explain, _ = _saliency_source(target)
        decided[name] = [explain(images[i:i + 1])[1:] for i in range(3)]
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    for (run_class, run_p), (export_class, export_p), p in zip(decided["run"], decided["export"], probabilities):
        assert run_class == export_class == metrics["class_names"][int(p >= metrics["val"]["threshold"])]
        assert run_p == pytest.approx(export_p, abs=1e-5) and run_p == pytest.approx(max(p, 1 - p), abs=1e-5)
    missing = runner.invoke(main, ["saliency", str(root / "run"), str(tmp_path / "nothing*.png")])
    assert missing.exit_code == 2 and "no file matches this pattern" in missing.stderr


def test_a_model_whose_layers_are_not_a_chain_is_refused_in_one_sentence():
    inputs = keras.Input((16, 16, 3))
    backbone = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3), keras.layers.ReLU(),
                                 keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()], name="net")
    features = backbone(inputs)
    skip = keras.layers.GlobalAveragePooling2D(name="skip")(inputs)  # a second path around the backbone
    joined = keras.layers.Concatenate()([features, skip])
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(joined))
    with pytest.raises((ValueError, TypeError)):
        GradCam(model)(np.full((2, 16, 16, 3), 100.0, np.float32))


def test_the_default_map_is_the_last_at_least_6_cells_on_a_side():
    """MobileNetV2 at the shipped recipe's 96 px ends in a 3×3 map, too coarse to find anything
    (benchmarks/saliency_localisation.py); Grad-CAM explains its last 6×6 map instead. ResNet50 at 224 px keeps its
    last map (7×7). Built without weights: only the shapes matter."""
    from tltf.saliency.grad_cam import feature_map_layer

    mobilenet = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    assert feature_map_layer(mobilenet).name == "block_13_expand_relu"
    resnet = keras.applications.ResNet50(input_shape=(224, 224, 3), include_top=False, weights=None)
    assert feature_map_layer(resnet).name == resnet.layers[-1].name
    tiny = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, strides=2), keras.layers.ReLU()])
    assert feature_map_layer(tiny).name == tiny.layers[-1].name  # no map that large: the last one
