"""Data sources: npz, directory, csv, medmnist and tfds → `ImageSplits`.

Every source ends in the same form: uint8 RGB arrays at `data.image_size`,
integer labels, class names, and train/val/test splits. A source without a
val split gets a stratified, seeded one carved from train; a source without a
test split has `test = None` and is evaluated on val.

Problems users can fix raise `DataError` naming the file, folder or key.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import Optional

import numpy as np

from tltf.data.images import IMAGE_SUFFIXES, decode_files, standardize
from tltf.errors import DataError

# MedMNIST v2 (28 px) on Zenodo; the MD5 sums are the ones the medmnist package checks.
MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{name}.npz?download=1"
MEDMNIST_MD5 = {
    "pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f",
}
MEDMNIST_CLASS_NAMES = {
    "pneumoniamnist": ["normal", "pneumonia"],
}

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Split:
    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


@dataclasses.dataclass
class ImageSplits:
    class_names: list[str]
    train: Split
    val: Split
    test: Optional[Split]
    val_was_carved: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        parts = [f"{name} {len(split)}" for name, split in self.items()]
        carved = " (val carved from train)" if self.val_was_carved else ""
        return f"{self.num_classes} classes ({', '.join(self.class_names)}); " + ", ".join(parts) + carved

    def items(self):
        for name in SPLITS:
            split = getattr(self, name)
            if split is not None:
                yield name, split


def load_splits(data, seed: int = 0) -> ImageSplits:
    """Loads the recipe's `data` section into `ImageSplits`.

    Args:
        data: a validated data section (`tltf.recipe.DataSource`).
        seed: seeds the carved validation split.
    """
    raw, class_names = load_raw(data)
    return _finish(raw, class_names, data, seed)


def load_raw(data) -> tuple[dict, Optional[list[str]]]:
    """The source's own splits (`{"train": Split, ...}`) and class names, before any val split is carved."""
    loader = {
        "npz": _load_npz_source,
        "directory": _load_directory,
        "csv": _load_csv,
        "medmnist": _load_medmnist,
        "tfds": _load_tfds,
    }[data.source]
    return loader(data)


# ------------------------------------------------------------------- sources


def _load_npz_source(data):
    return _read_npz(_existing(data.path, "data.path"), data), data.class_names


def _read_npz(path: Path, data) -> dict:
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
                raw[split] = Split(
                    standardize(archive[f"{split}_images"], data.image_size),
                    np.asarray(archive[f"{split}_labels"]).reshape(-1).astype(np.int64),
                )
    return raw


def _load_directory(data):
    root = _existing(data.path, "data.path")
    if not root.is_dir():
        raise DataError(f"{root}: data.path of a directory source must be a folder of class subfolders")
    split_roots = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if split_roots and "train" not in split_roots:
        raise DataError(f"{root}: has {', '.join(split_roots)} folders but no train/ folder")
    if not split_roots:
        split_roots = {"train": root}
    class_names = _class_folders(split_roots["train"])
    raw = {}
    for split, folder in split_roots.items():
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
                    raise DataError(
                        f"{file}: not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))}); move it out of the class folder"
                    )
            paths += files
            labels += [label] * len(files)
        extra = sorted(set(p.name for p in folder.iterdir() if p.is_dir()) - set(class_names))
        if extra and split != "train":
            raise DataError(f"{folder / extra[0]}: class folder not present under train/")
        images = decode_files(paths, data.image_size, title=f"decoding {split} images from {folder}")
        raw[split] = Split(images, np.asarray(labels, np.int64))
    return raw, class_names


def _class_folders(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"{folder}: no class subfolders; put each class's images in a folder named after it")
    return names


def _load_csv(data):
    path = _existing(data.path, "data.path")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for key, column in (("data.image_column", data.image_column), ("data.label_column", data.label_column),
                            ("data.split_column", data.split_column)):
            if column is not None and column not in columns:
                raise DataError(f"{path}: {key}: no column {column!r}; the columns are {', '.join(columns)}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{path}: no rows")
    raw_labels = [row[data.label_column].strip() for row in rows]
    class_names, label_ids = _csv_labels(raw_labels, data.class_names, path)
    by_split: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        split = row[data.split_column].strip().lower() if data.split_column else "train"
        if split == "validation":
            split = "val"
        if split not in SPLITS:
            raise DataError(f"{path}: row {i + 2}: split {split!r} is not train, val or test")
        by_split.setdefault(split, []).append(i)
    if "train" not in by_split:
        raise DataError(f"{path}: no train rows in {data.split_column!r}")
    raw = {}
    for split, indices in by_split.items():
        paths = [_csv_image_path(rows[i][data.image_column], path) for i in indices]
        images = decode_files(paths, data.image_size, title=f"decoding {split} images listed in {path}")
        raw[split] = Split(images, label_ids[indices])
    return raw, class_names


def _csv_labels(raw_labels: list[str], class_names: Optional[list[str]], path: Path):
    if all(label.lstrip("-").isdigit() for label in raw_labels):
        ids = np.asarray([int(label) for label in raw_labels], np.int64)
        names = class_names or [str(i) for i in range(int(ids.max()) + 1)]
        return names, ids
    names = class_names or sorted(set(raw_labels))
    unknown = sorted(set(raw_labels) - set(names))
    if unknown:
        raise DataError(f"{path}: label {unknown[0]!r} is not in data.class_names")
    index = {name: i for i, name in enumerate(names)}
    return names, np.asarray([index[label] for label in raw_labels], np.int64)


def _csv_image_path(value: str, csv_path: Path) -> Path:
    image = Path(value.strip()).expanduser()
    return image if image.is_absolute() else csv_path.parent / image


def _load_medmnist(data):
    import keras

    root = Path(data.root).expanduser()
    path = root / f"{data.name}.npz"
    if not path.exists():
        md5 = data.md5 or MEDMNIST_MD5.get(data.name)
        url = data.url or MEDMNIST_URL.format(name=data.name)
        root.mkdir(parents=True, exist_ok=True)
        # Download under a temporary name: Keras leaves a file that fails its hash check in place.
        partial = root / f"{path.name}.download"
        try:
            keras.utils.get_file(
                fname=partial.name, origin=url, file_hash=md5, hash_algorithm="md5",
                cache_dir=str(root), cache_subdir="",
            )
        except Exception as error:
            partial.unlink(missing_ok=True)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(
                f"{path}: not found and the download from {url} failed ({reason}); "
                f"copy {data.name}.npz into {root} or set data.root to the folder that has it"
            ) from None
        os.replace(partial, path)
        if md5 is None:
            print(f"warning: no known MD5 for {data.name}; the download was not checked")
    class_names = data.class_names or MEDMNIST_CLASS_NAMES.get(data.name)
    return _read_npz(path, data), class_names


def _load_tfds(data):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            "data.source: tfds needs the tensorflow-datasets package; pip install tensorflow-datasets"
        ) from None
    data_dir = str(Path(data.data_dir).expanduser()) if data.data_dir else None
    if "train" not in data.splits:
        raise DataError("data.splits: needs a train entry, e.g. {train: train, test: test}")
    try:
        builder = tfds.builder(data.name, data_dir=data_dir)
        if data.download:
            builder.download_and_prepare()
    except Exception as error:
        reason = str(error).splitlines()[0]
        raise DataError(
            f"data.name: cannot load tfds dataset {data.name!r} from {data_dir or 'the default data_dir'} "
            f"({reason}); prepare it there first or set data.data_dir"
        ) from None
    feature = builder.info.features[data.label_key]
    class_names = data.class_names or list(getattr(feature, "names", []) or [])
    raw = {}
    for split, tfds_split in data.splits.items():
        images, labels = [], []
        for example in tfds.as_numpy(builder.as_dataset(split=tfds_split)):
            images.append(standardize(example[data.image_key][None], data.image_size)[0])
            labels.append(int(example[data.label_key]))
        if not images:
            raise DataError(f"data.splits.{split}: tfds split {tfds_split!r} is empty")
        raw[split] = Split(np.stack(images), np.asarray(labels, np.int64))
    return raw, class_names or None


# ---------------------------------------------------------------------- peek


@dataclasses.dataclass
class DataPeek:
    """What a dry run needs from the data, read without decoding images."""

    class_names: list[str]
    train_count: int  # images that will train (after a carved val split)
    class_counts: list[int]
    warnings: list[str]


# Split sizes of MedMNIST files, for a dry run before the file is downloaded.
MEDMNIST_TRAIN_COUNTS = {"pneumoniamnist": [1214, 3494]}


def peek_data(data) -> DataPeek:
    """Classes, training-set size and range warnings, reading labels and folder names only.

    Raises:
        DataError: the data cannot be found.
    """
    warnings: list[str] = []
    if data.source in ("npz", "medmnist"):
        if data.source == "medmnist":
            path = Path(data.root).expanduser() / f"{data.name}.npz"
            if not path.exists():
                counts = MEDMNIST_TRAIN_COUNTS.get(data.name)
                if counts is None:
                    raise DataError(f"{path}: not found; tltf explain does not download data")
                names = data.class_names or MEDMNIST_CLASS_NAMES.get(data.name) or [f"class_{i}" for i in range(len(counts))]
                return _peek(names, np.repeat(np.arange(len(counts)), counts), True, data, warnings)
        else:
            path = _existing(data.path, "data.path")
        with np.load(path) as archive:
            labels = np.asarray(archive["train_labels"]).reshape(-1).astype(np.int64)
            has_val = "val_labels" in archive.files
            sample = archive["train_images"][:256]
            all_labels = [np.asarray(archive[f"{s}_labels"]).reshape(-1) for s in SPLITS if f"{s}_labels" in archive.files]
        warnings += _range_warnings(sample, path)
        count = int(max(label.max() for label in all_labels)) + 1
        names = data.class_names or (MEDMNIST_CLASS_NAMES.get(getattr(data, "name", "")) if data.source == "medmnist"
                                     else None) or [f"class_{i}" for i in range(count)]
        return _peek(names, labels, has_val, data, warnings)
    if data.source == "directory":
        root = _existing(data.path, "data.path")
        train_root = root / "train" if (root / "train").is_dir() else root
        names = _class_folders(train_root)
        labels = np.concatenate([np.full(sum(1 for p in (train_root / n).iterdir() if p.is_file()), i)
                                 for i, n in enumerate(names)])
        return _peek(names, labels.astype(np.int64), (root / "val").is_dir(), data, warnings)
    if data.source == "csv":
        path = _existing(data.path, "data.path")
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        train_rows = [r for r in rows if not data.split_column or r[data.split_column].strip().lower() == "train"]
        has_val = bool(data.split_column) and any(r[data.split_column].strip().lower() in ("val", "validation")
                                                   for r in rows)
        names, ids = _csv_labels([r[data.label_column].strip() for r in train_rows], data.class_names, path)
        return _peek(names, ids, has_val, data, warnings)
    raw, names = _load_tfds(data)  # tfds: the builder's metadata would do, but datasets are small here
    return _peek(names or [f"class_{i}" for i in range(int(raw["train"].labels.max()) + 1)], raw["train"].labels,
                 "val" in raw, data, warnings)


def _peek(names, labels: np.ndarray, has_val: bool, data, warnings) -> DataPeek:
    counts = np.bincount(labels, minlength=len(names)).tolist()
    train_count = len(labels) if has_val else len(labels) - int(round(len(labels) * data.val_fraction))
    present = [c for c in counts if c]
    if data.class_weight == "none" and len(present) > 1 and max(present) >= 1.5 * min(present):
        warnings.append(f"data.class_weight: classes are imbalanced ({' / '.join(map(str, counts))} training images) "
                        "and class_weight is none; set it to auto to weight them (tltf applies it as sample weights, "
                        "which Keras never ignores)")
    if data.class_weight == "auto" and len(present) > 1 and max(present) < 1.05 * min(present):
        warnings.append("data.class_weight: auto has no effect here: the classes are balanced")
    return DataPeek(list(names), int(train_count), counts, warnings)


def _range_warnings(sample: np.ndarray, path: Path) -> list[str]:
    if sample.size == 0:
        return []
    if np.issubdtype(sample.dtype, np.floating) and float(sample.max()) <= 1.0:
        return [f"{path}: images are floats in [0, 1] but tltf's backbones expect raw 0–255 pixels; they would be "
                "clipped to 0 and 1. Multiply them by 255 before training"]
    if float(sample.max()) > 255:
        return [f"{path}: pixel values up to {float(sample.max()):g}, above the 0–255 the backbones expect; "
                "they would be clipped to 255. Rescale them to 0–255"]
    return []


# ------------------------------------------------------------------- helpers


def _existing(path, key: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: {key} does not exist; check the path (relative paths start at {os.getcwd()})")
    return path


def _finish(raw: dict, class_names: Optional[list[str]], data, seed: int) -> ImageSplits:
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
    val_was_carved = "val" not in raw
    if val_was_carved:
        train, val = _stratified_split(train, data.val_fraction, seed)
    else:
        val = raw["val"]
    return ImageSplits(list(class_names), train, val, raw.get("test"), val_was_carved)


def _name(class_names, label) -> str:
    return repr(class_names[label]) if class_names and label < len(class_names) else f"label {label}"


def _stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(split.labels)
    if counts[counts > 0].min() < 2:
        raise DataError(
            "data.val_fraction: a class has a single training image, too few to carve a stratified "
            "validation split; add images or provide a val split"
        )
    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(split)), test_size=fraction, random_state=seed, stratify=split.labels
        )
    except ValueError as error:
        raise DataError(f"data.val_fraction: {error}") from None
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return (Split(split.images[train_idx], split.labels[train_idx]),
            Split(split.images[val_idx], split.labels[val_idx]))


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced weights, n / (C · count), as per-class factors for sample weights."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)
