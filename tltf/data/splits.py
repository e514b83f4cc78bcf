"""Labelled image splits: what every source ends in, and the validation split carved when a source has none."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tltf.data.subsample import subsample_indices
from tltf.errors import DataError

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Split:
    """One split's images and labels.

    Example:
        split = Split(images, labels)
        len(split)          # number of images

    Args:
        images: uint8 `[N,S,S,3]`: an array, or a `tltf.data.image_store.ImageStore` for images kept on disk.
        labels: int64 class ids `[N]`.
    """

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: np.ndarray) -> "Split":
        """The images and labels at `indices` (a store on disk stays on disk: nothing is read)."""
        from tltf.data.image_store import ImageStore

        images = self.images.subset(indices) if isinstance(self.images, ImageStore) else self.images[indices]
        return Split(images, self.labels[indices])


@dataclasses.dataclass
class ImageSplits:
    """A dataset ready to train on: class names and train, val and (if the source has one) test splits.

    Example:
        splits = tltf.data.load_splits(recipe.data, seed=0)
        print(splits.summary())        # "2 classes (normal, pneumonia); train 4708, val 524, test 624"

    Args:
        class_names: names for label ids 0..C-1.
        train: the training split.
        val: the validation split (the source's own, or carved from train).
        test: the test split, or None.
        val_was_carved: whether val was carved from train.
        test_was_carved: whether test was carved from train (`data.test_fraction`).
        train_subsampled_from: the training split's size before `data.train_fraction` / `train_per_class`.
    """

    class_names: list[str]
    train: Split
    val: Split
    test: Optional[Split]
    val_was_carved: bool = False
    test_was_carved: bool = False
    train_subsampled_from: Optional[int] = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        parts = [f"{name} {len(split)}" for name, split in self.items()]
        carved = " (test carved from train)" if self.test_was_carved else ""
        carved += " (val carved from train)" if self.val_was_carved else ""
        if self.train_subsampled_from is not None:
            carved += f" (train subsampled from {self.train_subsampled_from})"
        return f"{self.num_classes} classes ({', '.join(self.class_names)}); " + ", ".join(parts) + carved

    def items(self):
        for name in SPLITS:
            split = getattr(self, name)
            if split is not None:
                yield name, split


def finish_splits(raw: dict, class_names: Optional[list[str]], data, seed: int) -> ImageSplits:
    """Checks a source's own splits and carves a stratified, seeded val split from train when there is none."""
    train = raw["train"]
    present = np.unique(train.labels)
    if len(present) < 2:
        raise DataError(
            f"data: the train split has a single class ({_name(class_names, present[0])}); "
            "transfer learning here needs at least two classes"
        )
    if present.min() < 0:
        raise DataError(f"data: labels must be 0..C-1 class ids, found {present.min()}")
    num_classes = int(max(split.labels.max() for split in raw.values())) + 1
    if class_names is None:
        class_names = [f"class_{i}" for i in range(num_classes)]
    if len(class_names) < num_classes:
        raise DataError(
            f"data.class_names: {len(class_names)} names for labels up to {num_classes - 1}; give one name per class"
        )
    check_labels(raw, class_names)
    test = raw.get("test")
    test_fraction = getattr(data, "test_fraction", None)
    if test_fraction is not None:
        if test is not None:
            raise DataError("data.test_fraction: the data has its own test split; remove data.test_fraction")
        # Carved first and seeded by the subsample seed, not the training seed: runs that differ in train.seed
        # are scored on the same test images, and no test image ever trains or validates.
        train, test = stratified_split(train, test_fraction, data.subsample_seed, key="data.test_fraction")
    val_was_carved = "val" not in raw
    if val_was_carved:
        train, val = stratified_split(train, data.val_fraction, seed)
    else:
        val = raw["val"]
    subsampled_from = None
    if data.train_fraction is not None or data.train_per_class is not None:
        kept = subsample_indices(train.labels, fraction=data.train_fraction, per_class=data.train_per_class,
                                 seed=data.subsample_seed)
        subsampled_from, train = len(train), train.take(kept)
    return ImageSplits(list(class_names), train, val, test, val_was_carved, test_fraction is not None,
                       subsampled_from)


def check_labels(raw: dict, class_names: list) -> None:
    """Val and test hold no label that train lacks, and every class has training images."""
    present = set(np.unique(raw["train"].labels).tolist())
    for split in ("val", "test"):
        if split in raw:
            unseen = sorted(set(np.unique(raw[split].labels).tolist()) - present)
            if unseen:
                raise DataError(f"data: the {split} split has label {unseen[0]}, which never occurs in the train split")
    missing = [i for i in range(len(class_names)) if i not in present]
    if missing:
        raise DataError(
            f"data: class {_name(class_names, missing[0])} (id {missing[0]}) has no training image; the train labels "
            f"are {sorted(present)}, so label ids must be 0..{len(present) - 1} with one data.class_names entry each"
        )


def _name(class_names, label) -> str:
    return repr(class_names[label]) if class_names and label < len(class_names) else f"label {label}"


def stratified_split(split: Split, fraction: float, seed: int, key: str = "data.val_fraction") -> tuple[Split, Split]:
    """(kept, held out): `fraction` of each class held out, seeded; errors name the recipe `key`."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(split.labels)
    if counts[counts > 0].min() < 2:
        raise DataError(
            f"{key}: a class has a single training image, too few to carve a stratified "
            "split from; add images or provide the split"
        )
    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(split)), test_size=fraction, random_state=seed, stratify=split.labels
        )
    except ValueError as error:
        raise DataError(f"{key}: {error}") from None
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return split.take(train_idx), split.take(val_idx)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced weights, n / (C · count), as per-class factors for sample weights."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)
