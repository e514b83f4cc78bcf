"""Adapting to a target without labels: an npz holding only images, or a folder of images without class folders
(the form a new scanner's images come in). Labels, where present, only evaluate."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_recipe
from PIL import Image

import tltf
from tltf.adapt.target import load_target
from tltf.cli.main import main
from tltf.recipe import load_recipe


@pytest.fixture
def unlabelled_targets(tmp_path, domains):
    """The target domain's train images as an images-only npz, and as PNG files in a flat folder with one nested
    folder (a scanner's export by date), with a non-image file beside them."""
    _, target = domains
    with np.load(target) as archive:
        images = archive["train_images"]
    np.savez(tmp_path / "images-only.npz", train_images=images)
    flat = tmp_path / "scanner-b"
    (flat / "2026-11").mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save((flat if i % 2 else flat / "2026-11") / f"scan{i:03d}.png")
    (flat / "notes.txt").write_text("not an image")
    return tmp_path / "images-only.npz", flat, images


def test_both_unlabelled_forms_load_as_the_target_images(unlabelled_targets):
    npz, flat, images = unlabelled_targets
    recipe = tltf.recipe.validate_recipe({"data": {"source": "npz", "path": str(npz)},
                                          "adaptation": {"target": {"source": "npz", "path": str(npz)}}})
    from_npz = load_target(recipe.adaptation.target, 16, ["class_0", "class_1"])
    assert from_npz.evaluation is None and np.array_equal(from_npz.images[..., 0], images)
    recipe = tltf.recipe.validate_recipe({"data": {"source": "npz", "path": str(npz)},
                                          "adaptation": {"target": {"source": "directory", "path": str(flat)}}})
    from_folder = load_target(recipe.adaptation.target, 16, ["class_0", "class_1"])
    assert from_folder.evaluation is None and len(from_folder.images) == len(images)
    # every image, nested ones too, in path order: the even scans sit in 2026-11/, sorted before the odd ones
    order = [2 * i for i in range(len(images) // 2)] + [2 * i + 1 for i in range(len(images) // 2)]
    assert np.array_equal(from_folder.images[..., 0], images[order])


@pytest.mark.parametrize("form", ["npz", "folder"])
def test_a_run_adapts_to_an_unlabelled_target_and_says_it_had_no_labels(tmp_path, domains, unlabelled_targets, form):
    source, _ = domains
    npz, flat, _ = unlabelled_targets
    target = f"{{source: npz, path: {npz}}}" if form == "npz" else f"{{source: directory, path: {flat}}}"
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(source)},
                        train={"strategy": "warmup_then_finetune", "epochs": 2, "head_warmup": {"epochs": 1}})
    recipe = load_recipe(path, [f"adaptation.target={target}", "adaptation.method=adabn", "model.bn=frozen"])
    tltf.fit(recipe, tmp_path / "run", verbose=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "target" not in metrics and "target_source_only" not in metrics
    assert metrics["adaptation"]["method"] == "adabn" and "verdict" in metrics["adaptation"]
    assert metrics["a_distance"]["after"] >= 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "the target has no labels: no target AUC or accuracy" in report


def test_translate_takes_a_folder_of_unlabelled_images(tmp_path, domains, unlabelled_targets):
    source, _ = domains
    _, flat, images = unlabelled_targets
    result = CliRunner().invoke(main, ["translate", "--source", str(source), "--target", str(flat), "--out",
                                       str(tmp_path / "translated.npz"), "--image-size", "16", "--epochs", "1",
                                       "--filters", "4"])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "translated.npz") as archive:
        assert archive["train_images"].shape[0] == 64 and "train_labels" in archive.files
