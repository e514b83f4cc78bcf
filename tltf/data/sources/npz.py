"""The `npz` source: one .npz archive in the MedMNIST layout (`{split}_images`, `{split}_labels`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from tltf.data.images import standardize
from tltf.data.sources.base import SourceConfig, existing, make_peek, range_warnings
from tltf.data.splits import SPLITS, Split
from tltf.errors import DataError

# As an adaptation target: its train split adapts, its test split evaluates (`sources.adapts_on_train_split`).
TARGET_ADAPTS_ON_TRAIN = True


class NpzSource(SourceConfig):
    """MedMNIST layout: `{split}_images`, `{split}_labels` for train/val/test."""

    source: Literal["npz"]
    path: Path


Config = NpzSource


def load(data):
    """The archive's splits and the recipe's class names."""
    return read_npz(existing(data.path, "data.path"), data), data.class_names


def peek(data):
    return peek_npz(existing(data.path, "data.path"), data, data.class_names)


def unlabelled(data):
    """`(images, evaluation)` when the archive has `train_images` without `train_labels` (images to adapt to):
    its train images unlabelled, and its `test_images`/`test_labels`, if any, for evaluation only. None for an
    archive with labels."""
    path = existing(data.path, "data.path")
    try:
        archive = np.load(path)
    except Exception:  # the labelled reader says what is wrong with the file
        return None
    with archive:
        keys = set(archive.files)
        if "train_images" not in keys or "train_labels" in keys:
            return None
        images = _images(archive, "train_images", path, data)
        labelled = "test_images" in keys and "test_labels" in keys
        return images, _labelled_split(archive, "test", path, data) if labelled else None


def read_npz(path: Path, data) -> dict:
    """`{split: Split}` from a MedMNIST-layout archive, images brought to `data.image_size` RGB."""
    try:
        archive = np.load(path)
    except Exception as error:  # numpy raises several types for bad archives
        raise DataError(f"{path}: not a readable .npz archive ({type(error).__name__}); check the file") from None
    with archive:
        keys = set(archive.files)
        if "train_images" not in keys or "train_labels" not in keys:
            raise DataError(
                f"{path}: expected arrays train_images and train_labels (MedMNIST layout), found {sorted(keys)}"
            )
        raw = {}
        for split in SPLITS:
            if f"{split}_images" in keys:
                if f"{split}_labels" not in keys:
                    raise DataError(f"{path}: {split}_images has no {split}_labels array")
                raw[split] = _labelled_split(archive, split, path, data)
    return raw


def _images(archive, key: str, path: Path, data) -> np.ndarray:
    """The archive's `key` array, checked as pixels and brought to `data.image_size` RGB."""
    images = archive[key]
    check_pixels(images, path, key)
    return standardize(images, data.image_size)


def _labelled_split(archive, split: str, path: Path, data) -> Split:
    """`<split>_images` (checked, resized) with `<split>_labels` as int64 class ids."""
    return Split(_images(archive, f"{split}_images", path, data),
                 np.asarray(archive[f"{split}_labels"]).reshape(-1).astype(np.int64))


def check_pixels(images: np.ndarray, path: Path, key: str) -> None:
    """Raw 0–255 pixel values, finite; a `DataError` naming the file, the array and the first bad image."""
    if images.dtype == np.uint8:
        return
    if not np.issubdtype(images.dtype, np.number):
        raise DataError(f"{path}: {key} holds {images.dtype} values, not pixel values")
    flat = images.reshape(len(images), -1)
    if np.issubdtype(images.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
        if len(bad):
            raise DataError(f"{path}: {key}[{bad[0]}] holds NaN or infinite values ({len(bad)} images do); "
                            "fix or remove those images")
    outside = np.flatnonzero(((flat < 0) | (flat > 255)).any(axis=1))
    if len(outside):
        image = flat[outside[0]]
        raise DataError(f"{path}: {key}[{outside[0]}] has values from {image.min():g} to {image.max():g}, outside "
                        f"the raw 0–255 pixels tltf's backbones take ({len(outside)} images do); rescale the array")


def peek_npz(path: Path, data, class_names):
    """Classes, counts and pixel-range advice from the labels and a sample of the images."""
    with np.load(path) as archive:
        labels = np.asarray(archive["train_labels"]).reshape(-1).astype(np.int64)
        has_val = "val_labels" in archive.files
        sample = archive["train_images"][:256]
        all_labels = [np.asarray(archive[f"{s}_labels"]).reshape(-1) for s in SPLITS if f"{s}_labels" in archive.files]
    count = int(max(label.max() for label in all_labels)) + 1
    names = class_names or [f"class_{i}" for i in range(count)]
    return make_peek(names, labels, has_val, data, range_warnings(sample, path))
