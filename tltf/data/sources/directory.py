"""The `directory` source: one subfolder per class, optionally under `train/`, `val/` and `test/`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from tltf.data.decoded_cache import load_image_files
from tltf.data.images import IMAGE_SUFFIXES
from tltf.data.sources.base import ImageFilesConfig, existing, make_peek
from tltf.data.splits import SPLITS, Split
from tltf.errors import DataError


class DirectorySource(ImageFilesConfig):
    """Class subfolders, optionally under `train/`, `val/` and `test/`."""

    source: Literal["directory"]
    path: Path


Config = DirectorySource


def load(data):
    split_roots = _split_roots(data)
    class_names = class_folders(split_roots["train"])
    raw = {}
    for split, folder in split_roots.items():
        paths, labels = _listed_files(folder, class_names)
        extra = sorted(set(p.name for p in folder.iterdir() if p.is_dir()) - set(class_names))
        if extra and split != "train":
            raise DataError(f"{folder / extra[0]}: class folder not present under train/")
        images = load_image_files(paths, data, title=f"decoding {split} images from {folder}")
        raw[split] = Split(images, np.asarray(labels, np.int64))
    return raw, class_names


def peek(data):
    """Class names and counts from folder names and file counts; no image is decoded."""
    root = existing(data.path, "data.path")
    train_root = root / "train" if (root / "train").is_dir() else root
    names = class_folders(train_root)
    labels = np.concatenate([np.full(sum(1 for p in (train_root / n).iterdir() if p.is_file()), i)
                             for i, n in enumerate(names)])
    return make_peek(names, labels.astype(np.int64), (root / "val").is_dir(), data, [])


def unlabelled(data):
    """`(images, None)` when the folder holds image files itself (images to adapt to, no classes): every image
    file in it and in the folders below it, in path order. None for a folder of class subfolders."""
    root = existing(data.path, "data.path")
    if not root.is_dir() or not any(_is_image(p) for p in root.iterdir()):
        return None
    paths = sorted(p for p in root.rglob("*") if _is_image(p) and not any(
        part.startswith(".") for part in p.relative_to(root).parts))
    return load_image_files(paths, data, title=f"decoding unlabelled images from {root}"), None


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _split_roots(data) -> dict:
    root = existing(data.path, "data.path")
    if not root.is_dir():
        raise DataError(f"{root}: data.path of a directory source must be a folder of class subfolders")
    split_roots = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if split_roots and "train" not in split_roots:
        raise DataError(f"{root}: has {', '.join(split_roots)} folders but no train/ folder")
    return split_roots or {"train": root}


def _listed_files(folder: Path, class_names: list[str]):
    """Every image file under each class folder, with its label; a non-image or an empty class is an error."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = folder / name
        if not class_dir.is_dir():
            raise DataError(f"{class_dir}: missing class folder (train/ has class {name!r})")
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{class_dir}: empty class folder; add images or remove the folder")
        for file in files:
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{file}: not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))}); "
                                "move it out of the class folder")
        paths += files
        labels += [label] * len(files)
    return paths, labels


def class_folders(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{folder}: no class subfolders; put each class's images in a folder named after it")
    return names
