"""Pixel-level adaptation: a CycleGAN learns a translation from unpaired images, and `tltf translate` writes the
labelled source in the target's look for `tltf fit`."""

import numpy as np
from click.testing import CliRunner
from conftest import assert_delivered_by_dev_or_its_fallback, separable_images, write_recipe

import tltf
from tltf.cli.main import main
from tltf.recipe import load_recipe


def grey_and_red_pair(root):
    """Grey images, and other images of the same kind tinted red: the target look is a colour."""
    arrays = {}
    for split, n, seed in (("train", 64, 0), ("val", 24, 1), ("test", 24, 2)):
        images, labels = separable_images(n, 16, seed=seed)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez(root / "source.npz", **arrays)
    grey = separable_images(64, 16, seed=7)[0].astype(float)
    red = np.stack([grey, 0.3 * grey, 0.3 * grey], axis=-1).astype(np.uint8)
    np.savez(root / "target.npz", train_images=red, train_labels=np.zeros(64, np.int64))
    return root / "source.npz", root / "target.npz"


def test_translate_learns_the_look_and_writes_the_labelled_source_for_fit(tmp_path):
    source, target = grey_and_red_pair(tmp_path)
    out = tmp_path / "translated" / "source-as-target.npz"
    result = CliRunner().invoke(main, ["translate", "--source", str(source), "--target", str(target), "--out",
                                       str(out), "--image-size", "16", "--epochs", "12", "--filters", "8",
                                       "--lr", "2e-3"])
    assert result.exit_code == 0, result.output
    # The cycle loss falls: translated and translated back, an image comes back.
    losses = np.genfromtxt(tmp_path / "translated" / "source-as-target_losses.csv", delimiter=",", names=True)
    print("cycle loss per epoch:", np.round(losses["cycle_loss"], 3))
    assert len(losses) == 12 and losses["cycle_loss"][-1] < 0.5 * losses["cycle_loss"][0]
    original, translated = np.load(source), np.load(out)
    for split in ("train", "val", "test"):
        assert translated[f"{split}_images"].shape == (len(original[f"{split}_labels"]), 16, 16, 3)
        assert translated[f"{split}_images"].dtype == np.uint8
        assert np.array_equal(translated[f"{split}_labels"], original[f"{split}_labels"])
    # The translation takes on the target's look: grey in, red out.
    test = translated["test_images"].astype(float)
    redness = test[..., 0].mean() / max(test[..., 1].mean(), 1.0)
    print("red / green of the translated test images:", round(redness, 2))
    assert redness > 1.5  # the source's grey images have 1
    assert translated["class_names"].tolist() == ["class_0", "class_1"]
    assert (tmp_path / "translated" / "source-as-target_translation.png").stat().st_size > 0
    assert not list((tmp_path / "translated").glob("*.partial*"))
    # A recipe's data section reads it as it is (the recipe route test trains on translated images).
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(out)}))
    splits = tltf.data.load_splits(recipe.data)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (64, 24, 24)
    assert np.array_equal(splits.test.images, translated["test_images"])


def test_translate_names_the_option_whose_data_it_cannot_read(tmp_path):
    result = CliRunner().invoke(main, ["translate", "--source", "nothing here", "--target", "t.npz", "--out",
                                       str(tmp_path / "o.npz")])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("tltf: error: --source nothing here: not an .npz file, a folder or a YAML "
                                     "mapping such as '{source: npz, path: data.npz}'")
    unknown = CliRunner().invoke(main, ["translate", "--source", "{source: nope}", "--target", "t.npz", "--out",
                                        str(tmp_path / "o.npz")])
    assert unknown.exit_code == 2 and unknown.stderr.startswith("tltf: error: --source {source: nope}: ")
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert "data.source: unknown data source 'nope'; expected one of npz," in unknown.stderr  # a recipe's wording
    typo = CliRunner().invoke(main, ["translate", "--source", "{source: npz, path: s.npz, imagesize: 8}", "--target",
                                     "t.npz", "--out", str(tmp_path / "o.npz")])
    assert typo.exit_code == 2 and typo.stderr.strip().endswith("data.imagesize: unknown key; did you mean "
                                                                "'image_size'?")
    assert not (tmp_path / "o.npz").exists()


def test_the_recipe_route_trains_on_the_translated_source_and_judges_it_against_the_raw_source(tmp_path, domains,
                                                                                               tltf_log):
    import csv

    import keras

    source, target = domains
    path = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(source)},
                        train={"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {"epochs": 1}})
    recipe = load_recipe(path, [f"adaptation.target={{source: npz, path: {target}}}", "adaptation.method=translate",
                                "adaptation.translate={epochs: 2, filters: 4, residual_blocks: 1, image_size: 8}"])
    said = tltf.explain(recipe)["adaptation"]
    assert said.startswith(f"adaptation: translate toward npz {target}: first a CycleGAN (4 filters, 1 residual "
                           "blocks, 2 epochs at 8 px)")
    assert said.endswith("a source-only run at the same budget judges it")
    metrics = tltf.fit(recipe, tmp_path / "run", verbose=0).metrics
    run = tmp_path / "run"
    judged = metrics["adaptation"]
    assert judged["method"] == "translate" and judged["select"] == "dev"
    history = np.genfromtxt(run / "history.csv", delimiter=",", names=True)
    assert_delivered_by_dev_or_its_fallback(metrics, history)
    assert {"target", "target_source_only"} <= set(metrics) and judged["verdict"] in ("adapted", "worse", "collapsed")
    assert any("training the source-only baseline" in line for line in tltf_log)
    assert (run / "source_only" / "model.keras").exists() and (run / "translation.png").stat().st_size > 0
    losses = np.genfromtxt(run / "translation_losses.csv", delimiter=",", names=True)
    assert len(losses) == 2 and "cycle_loss" in losses.dtype.names
    assert keras.models.load_model(run / "translation" / "to_target.keras").input_shape == (None, 8, 8, 3)
    assert (run / "translation" / "to_source.keras").exists()
    assert not list(run.rglob("*.partial*"))
    # The classifier saw the source's train and val in the target's look, and is tested on the source's own
    # test images: its stored val scores are not what it gives the raw val images; its test scores are.
    model = keras.models.load_model(run / "model.keras")
    raw = np.load(source)
    with open(run / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    for split, translated in (("val", True), ("test", False)):
        stored = np.array([float(r["p_class_1"]) for r in rows if r["split"] == split])
        predicted = model.predict(raw[f"{split}_images"][..., None].repeat(3, -1), verbose=0)[:, 0]
        print(split, "largest stored − raw-image score:", np.abs(stored - predicted).max())
        assert np.allclose(stored, predicted, atol=1e-5) != translated
