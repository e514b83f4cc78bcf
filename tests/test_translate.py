"""Pixel-level adaptation: a CycleGAN learns a translation from unpaired images, and `tltf translate` writes the
labelled source in the target's look for `tltf fit`."""

import numpy as np
from click.testing import CliRunner

import tltf
from conftest import separable_images, write_recipe
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
    recipe = write_recipe(tmp_path / "r.yaml", {"source": "npz", "path": str(out)}, train={"epochs": 1})
    assert tltf.fit(load_recipe(recipe), tmp_path / "run", verbose=0).metrics["test"]["n"] == 24


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
