"""Images kept on disk: decoded once, read a batch at a time, the same pixels and the same run as in memory."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import separable_images, write_recipe
from PIL import Image

from tltf.data import load_splits
from tltf.data.image_store import ImageStore
from tltf.errors import DataError
from tltf.recipe import load_recipe

TESTS = Path(__file__).resolve().parent


def write_folder(root: Path, n: int = 60, size: int = 20) -> Path:
    """Class folders of PNG and JPEG files of mixed sizes (some grey), under train/ and test/."""
    images, labels = separable_images(n, size, channels=3, seed=2)
    for i, (image, label) in enumerate(zip(images, labels)):
        split = "test" if i % 5 == 0 else "train"
        folder = root / split / ("dark", "light")[label]
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image if i % 3 else image[..., 0])  # every third image grey
        if i % 4 == 0:
            picture = picture.resize((size + 7, size + 3))  # resized to image_size on decode
        picture.save(folder / f"{i:03d}.{'jpg' if i % 2 else 'png'}")
    return root


def folder_recipe(tmp_path, root, cache: str, **train):
    data = {"source": "directory", "path": str(root), "image_size": 16, "cache": cache,
            "cache_dir": str(tmp_path / "cache")}
    return load_recipe(write_recipe(tmp_path / f"{cache}.yaml", data, train=train))


def test_disk_and_memory_give_the_same_pixels_and_the_disk_copy_is_reused_until_a_file_changes(tmp_path, tltf_log):
    root = write_folder(tmp_path / "images")
    memory = load_splits(folder_recipe(tmp_path, root, "memory").data, seed=1)
    disk = load_splits(folder_recipe(tmp_path, root, "disk").data, seed=1)
    for name in ("train", "val", "test"):
        kept, stored = getattr(memory, name), getattr(disk, name)
        assert isinstance(stored.images, ImageStore) and isinstance(kept.images, np.ndarray)
        np.testing.assert_array_equal(stored.images[np.arange(len(stored))], kept.images)
        np.testing.assert_array_equal(stored.labels, kept.labels)
    stores = sorted((tmp_path / "cache").glob("*.u8"))
    assert len(stores) == 2  # train (val carved from it without a read) and test
    with pytest.raises(TypeError, match="a batch at a time"):
        np.asarray(disk.train.images)  # nothing loads a whole store by accident

    load_splits(folder_recipe(tmp_path, root, "disk").data, seed=1)
    assert sum("reusing the" in line for line in tltf_log) == 2
    changed = next((root / "test" / "dark").iterdir())
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    load_splits(folder_recipe(tmp_path, root, "disk").data, seed=1)
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 3  # the changed test split was decoded again


@pytest.mark.parametrize("bad", [b"", b"not an image at all"])
def test_a_bad_file_is_named_and_nothing_is_left_in_the_cache(tmp_path, bad):
    root = write_folder(tmp_path / "images")
    broken = root / "train" / "light" / "zz-broken.png"
    broken.write_bytes(bad)
    with pytest.raises(DataError, match="zz-broken.png"):
        load_splits(folder_recipe(tmp_path, root, "disk").data, seed=1)
    assert not [p.name for p in (tmp_path / "cache").glob("*") if p.suffix in (".u8", ".partial", ".json")]


def test_a_run_from_disk_equals_the_run_from_memory(tmp_path):
    """Deterministic fits (a fresh process: op determinism is process-wide) of the same folder, with
    augmentation and a warm-up, kept in memory and on disk: the same metrics.json and weights."""
    root = write_folder(tmp_path / "images")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        from conftest import write_recipe
        import keras, numpy as np, tltf
        tmp = Path({str(tmp_path)!r})
        runs = []
        for cache in ("memory", "disk"):
            data = {{"source": "directory", "path": {str(root)!r}, "image_size": 16, "cache": cache,
                     "cache_dir": str(tmp / "cache")}}
            path = write_recipe(tmp / f"{{cache}}.yaml", data, augment={{"flip": "horizontal", "contrast": 0.2}},
                                train={{"strategy": "warmup_then_finetune", "epochs": 3, "head_warmup": {{"epochs": 1}},
                                       "deterministic": True}})
            tltf.fit(tltf.load_recipe(path), tmp / cache, verbose=0)
            runs.append(((tmp / cache / "metrics.json").read_text(),
                         keras.models.load_model(tmp / cache / "model.keras").get_weights()))
        print("SAME", runs[0][0] == runs[1][0], all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1])))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SAME True True" in result.stdout, result.stdout[-2000:]
    assert json.loads((tmp_path / "disk" / "metrics.json").read_text())["test"]["n"] == 12


def test_a_cache_dir_that_cannot_be_written_is_named(tmp_path):
    root = write_folder(tmp_path / "images", n=10)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    recipe = folder_recipe(tmp_path, root, "disk")
    recipe.data.cache_dir = blocker / "cache"
    with pytest.raises(DataError, match=r"a-file/cache: data.cache_dir: cannot keep decoded images there"):
        load_splits(recipe.data, seed=1)


def test_a_target_of_several_split_folders_on_disk_is_one_store_with_the_pixels_of_memory(tmp_path):
    from tltf.adapt.target import load_target
    from tltf.recipe import validate_recipe

    root = write_folder(tmp_path / "target")  # train/ and test/ class folders
    targets = {}
    for cache in ("memory", "disk"):
        recipe = validate_recipe({
            "data": {"source": "npz", "path": "unused"},
            "adaptation": {"method": "dann", "target": {"source": "directory", "path": str(root), "cache": cache,
                                                        "cache_dir": str(tmp_path / "cache")}}})
        targets[cache] = load_target(recipe.adaptation.target, 16, ["dark", "light"])
    memory, disk = targets["memory"], targets["disk"]
    assert isinstance(disk.images, ImageStore) and len(disk.images) == len(memory.images) == 60
    assert np.array_equal(disk.images[np.arange(60)], memory.images)
    assert np.array_equal(disk.evaluation.labels, memory.evaluation.labels)
