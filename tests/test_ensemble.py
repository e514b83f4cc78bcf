"""`tltf ensemble`: finished runs averaged into one run that evaluate, compare, export and predict take unchanged."""

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from conftest import separable_images, write_recipe
from PIL import Image

import tltf
from tltf.cli.main import main
from tltf.data.sources import load_splits
from tltf.ensemble import fit_member_weights, log_loss
from tltf.evaluate.evaluator import predict_probabilities
from tltf.export import export_run
from tltf.models.anatomy import members_of
from tltf.recipe import load_recipe
from tltf.run_dir import load_run_model
from tltf.saliency.grad_cam import GradCam


def train_member(root: Path, data: Path, name: str, seed: int, size: int = 16, classes: int = 2, **data_keys) -> Path:
    recipe = write_recipe(root / f"{name}.yaml", {"source": "npz", "path": str(data), "image_size": size,
                                                   **data_keys}, train={"epochs": 2, "seed": seed})
    loaded = load_recipe(recipe)
    loaded.name = name
    tltf.fit(loaded, root / name, verbose=0)
    return root / name


def npz(path: Path, classes: int = 2, val: bool = True) -> Path:
    arrays = {}
    for split, n, seed in (("train", 64, 0), ("val", 32, 1), ("test", 32, 2))[: 3 if val else 1] + (
            () if val else (("test", 32, 2),)):
        images, labels = separable_images(n, 16, num_classes=classes, seed=seed, channels=3)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    data = npz(root / "d.npz")
    return root, data, [train_member(root, data, "a", 1), train_member(root, data, "b", 2),
                        train_member(root, data, "c", 3, size=20)]


def test_the_ensemble_is_the_mean_of_its_members_and_an_ordinary_run(members, tmp_path):
    root, data, runs = members
    result = CliRunner().invoke(main, ["ensemble", *map(str, runs), "--run-dir", str(tmp_path / "ens")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "ens"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [m["weight"] for m in metrics["ensemble"]["members"]] == pytest.approx([1 / 3] * 3)
    assert load_run_recipe_size(run) == 20  # the largest member's size; the 16 px members see it resized
    splits = load_splits(load_recipe_of(run).data)
    model = load_run_model(run)  # reloaded from model.keras, as evaluate and export read it
    images = splits.test.images
    by_member = []
    for member in runs:
        member_model = load_run_model(member)
        size = member_model.input.shape[1]
        member_images = images if size == 20 else keras.ops.convert_to_numpy(
            keras.ops.image.resize(images.astype("float32"), (size, size), interpolation="bilinear"))
        by_member.append(predict_probabilities(member_model, member_images))
    np.testing.assert_allclose(predict_probabilities(model, images), np.mean(by_member, axis=0), atol=1e-6)
    # evaluate, compare and export take it unchanged; the export's parity check passes.
    again = CliRunner().invoke(main, ["evaluate", str(run), "--json", str(tmp_path / "e.json")])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "e.json").read_text())["auc"] == pytest.approx(metrics["test"]["auc"])
    compared = CliRunner().invoke(main, ["compare", str(runs[0]), str(run)])
    assert compared.exit_code == 0, compared.output
    with pytest.raises(ValueError, match="averages 3 classifiers .* no one feature map"):
        GradCam(model)  # so the export serves it without a saliency signature, and says why
    exported = export_run(run, out=tmp_path / "serving")
    assert exported.parity.float_max_abs_diff < 1e-4
    assert "ensemble of 3 runs" in (run / "report.md").read_text()
    Image.fromarray(splits.test.images[0]).save(tmp_path / "x.png")
    predicted = CliRunner().invoke(main, ["predict", str(run), str(tmp_path / "x.png")])
    mean = float(np.mean(by_member, axis=0)[0])  # predict shows the decided class's probability
    assert predicted.exit_code == 0 and any(f"{p:.4f}" in predicted.output for p in (mean, 1 - mean))
    refused = CliRunner().invoke(main, ["saliency", str(run), str(tmp_path / "x.png"), "--out", str(tmp_path / "s")])
    assert refused.exit_code == 2 and "make the maps on a member" in refused.output and str(runs[0]) in refused.output


def test_weights_fitted_on_validation_lower_its_log_loss(members, tmp_path):
    root, data, runs = members
    ensemble = tltf.ensemble.make_ensemble(runs, tmp_path / "ens", weighting="val")
    members_rows = ensemble.metrics["ensemble"]["members"]
    weights = np.array([row["weight"] for row in members_rows])
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0, abs=1e-5)
    equal = tltf.ensemble.make_ensemble(runs, tmp_path / "equal")
    assert ensemble.metrics["ensemble"]["val_log_loss"] <= equal.metrics["ensemble"]["val_log_loss"] + 1e-9


def test_member_weights_favour_the_member_that_fits_validation():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    good = np.clip(labels * 0.8 + 0.1 + rng.normal(0, 0.05, 400), 0.01, 0.99)
    noise = rng.uniform(0.01, 0.99, 400)
    weights = fit_member_weights(labels, [noise, good])
    assert weights[1] > 0.9 and weights.sum() == pytest.approx(1.0)
    assert log_loss(labels, weights[0] * noise + weights[1] * good) < log_loss(labels, (noise + good) / 2)
    three = np.eye(3)[labels % 3] * 0.9 + 0.1 / 3
    assert log_loss(labels % 3, three) == pytest.approx(-np.log(0.9 + 0.1 / 3))


def copy_of(run: Path, to: Path, data=None, seed=None, class_names=None) -> Path:
    """A copy of a finished run whose recipe.yaml (data keys, train.seed) or metrics.json (class names) says
    something else: what the ensemble reads before it loads a model."""
    import shutil

    import yaml

    shutil.copytree(run, to)
    recipe = yaml.safe_load((to / "recipe.yaml").read_text())
    recipe["data"].update(data or {})
    recipe["train"]["seed"] = recipe["train"]["seed"] if seed is None else seed
    (to / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    metrics = json.loads((to / "metrics.json").read_text())
    metrics["class_names"] = class_names or metrics["class_names"]
    (to / "metrics.json").write_text(json.dumps(metrics))
    return to


def test_members_of_other_data_or_classes_are_refused_in_one_line(members, tmp_path):
    root, data, runs = members
    other = copy_of(runs[1], tmp_path / "other", data={"path": str(npz(tmp_path / "other.npz"))})
    result = CliRunner().invoke(main, ["ensemble", str(runs[0]), str(other), "--run-dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "data.path is" in result.output and len(result.output.strip().splitlines()) == 1
    renamed = copy_of(runs[1], tmp_path / "renamed", class_names=["cat", "dog"])
    result = CliRunner().invoke(main, ["ensemble", str(runs[0]), str(renamed)])
    assert result.exit_code == 2 and "classes ['cat', 'dog'] differ" in result.output
    assert not (tmp_path / "x").exists()


def test_validation_carved_with_different_seeds_is_refused(members, tmp_path):
    root, data, runs = members
    no_val = {"path": str(npz(tmp_path / "novalsplit.npz", val=False))}
    first, second = (copy_of(runs[0], tmp_path / f"s{seed}", data=no_val, seed=seed) for seed in (1, 2))
    result = CliRunner().invoke(main, ["ensemble", str(first), str(second)])
    assert result.exit_code == 2 and "different train.seed (1, 2)" in result.output
    same_seed = copy_of(runs[0], tmp_path / "same", data=no_val, seed=1)
    assert CliRunner().invoke(main, ["ensemble", str(first), str(same_seed)]).exit_code == 0


def load_recipe_of(run: Path):
    from tltf.run_dir import load_run_recipe

    return load_run_recipe(run)


def load_run_recipe_size(run: Path) -> int:
    return load_recipe_of(run).data.image_size


def test_a_member_with_lora_and_test_time_views_loads_and_exports_inside_an_ensemble(members, tmp_path):
    """Nested averaging (an ensemble of a run whose model averages its test-time views) with LoRA inside: the
    reloaded ensemble freezes the LoRA member as it trained, and its export passes the parity check."""
    root, data, runs = members
    recipe = write_recipe(tmp_path / "lora.yaml", {"source": "npz", "path": str(data)},
                          train={"epochs": 2, "seed": 4}, evaluate={"tta": ["flip"]},
                          model={"lora": {"rank": 2, "alpha": 4, "blocks": ["block2"]}})
    lora_run = tltf.fit(load_recipe(recipe), tmp_path / "lora", verbose=0).run_dir
    ensemble = tltf.ensemble.make_ensemble([runs[0], lora_run], tmp_path / "ens").run_dir
    (plain, with_views) = members_of(load_run_model(ensemble))
    (classifier,) = members_of(with_views)
    frozen_conv = [v for v in classifier.weights if v.path.endswith("conv/kernel")]
    assert frozen_conv and not any(v.trainable for v in frozen_conv)  # only adapters, BatchNorm and head train
    assert any("lora" in v.path for v in classifier.trainable_weights)
    assert all(v.trainable for v in classifier.get_layer("head").weights)
    assert all(v.trainable for v in plain.weights if v.path.endswith("conv/kernel"))
    assert export_run(ensemble, out=tmp_path / "serving").parity.float_max_abs_diff < 1e-4


def test_a_study_with_ensemble_seeds_averages_each_arms_seeds_and_compares_it_with_them(tmp_path, monkeypatch):
    """`ensemble_seeds: true`: each arm and grid point's seeds become one `tltf ensemble` run under ensembles/,
    whose test AUC is the mean of its members' probabilities', compared with each member in ensembles.csv and
    study.md. The runs are made beforehand, as the study would make them, so the study
    only writes its results (no Ray)."""
    from tltf.evaluate.metrics import roc_auc
    from tltf.study.results import run_dir
    from tltf.study.spec import expand_runs, load_study
    from tltf.study.study import run_study

    monkeypatch.chdir(tmp_path)
    data = npz(tmp_path / "tiny.npz")
    write_recipe(tmp_path / "recipe.yaml", {"source": "npz", "path": str(data)}, train={"epochs": 2})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "ens", "recipe": "recipe.yaml", "arms": {"base": {}, "short": {"train.epochs": 1}},
        "grid": {"train.lr": [0.01]}, "seeds": [1, 2, 3], "resources": {"cpus": 1}, "ensemble_seeds": True}))
    spec, recipe_path = load_study(tmp_path / "study.yaml")
    for run in expand_runs(spec):
        tltf.fit(tltf.load_recipe(recipe_path, list(run.overrides)), run_dir(tmp_path / "out", run), verbose=0)
    run_study(tmp_path / "study.yaml", out=tmp_path / "out")
    with open(tmp_path / "out" / "ensembles.csv") as handle:
        rows = {row["arm"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"base", "short"} and rows["base"]["members"] == "3"
    folder = tmp_path / "out" / "ensembles" / "base-lr=0.01-seeds"
    scores = []
    for seed in (1, 2, 3):
        with open(tmp_path / "out" / "runs" / f"base-lr=0.01-seed={seed}" / "predictions.csv") as handle:
            test = [row for row in csv.DictReader(handle) if row["split"] == "test"]
        scores.append([float(row["p_class_1"]) for row in test])
        labels = [int(row["label"]) for row in test]
    expected = roc_auc(np.array(labels), np.mean(scores, axis=0))
    assert float(rows["base"]["test.auc"]) == pytest.approx(expected, abs=1e-6)
    assert json.loads((folder / "metrics.json").read_text())["test"]["auc"] == pytest.approx(expected, abs=1e-6)
    assert "## Ensembles of seeds" in (tmp_path / "out" / "study.md").read_text()
