"""The `csv` source: a CSV file with an image-path column, a label column and optionally a split column."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from tltf.data.decoded_cache import load_image_files
from tltf.data.sources.base import ImageFilesConfig, existing, make_peek
from tltf.data.splits import SPLITS, Split
from tltf.errors import DataError


class CsvSource(ImageFilesConfig):
    """A CSV file with an image-path column and a label column."""

    source: Literal["csv"]
    path: Path
    image_column: str = "image"
    label_column: str = "label"
    split_column: Optional[str] = Field(None, description="Column holding train/val/test, if any.")


Config = CsvSource


def load(data):
    path = existing(data.path, "data.path")
    rows = _read_rows(path, data)
    class_names, label_ids = _labels([row[data.label_column].strip() for row in rows], data.class_names, path)
    by_split: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        split = _split_of(row, data)
        if split not in SPLITS:
            raise DataError(f"{path}: row {i + 2}: split {split!r} is not train, val or test")
        by_split.setdefault(split, []).append(i)
    if "train" not in by_split:
        raise DataError(f"{path}: no train rows in {data.split_column!r}")
    raw = {}
    for split, indices in by_split.items():
        paths = [_image_path(rows[i][data.image_column], path) for i in indices]
        images = load_image_files(paths, data, title=f"decoding {split} images listed in {path}")
        raw[split] = Split(images, label_ids[indices])
    return raw, class_names


def peek(data):
    """Class names and counts from the label column; no image is decoded."""
    path = existing(data.path, "data.path")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    train_rows = [r for r in rows if _split_of(r, data) == "train"]
    has_val = any(_split_of(r, data) == "val" for r in rows)
    names, ids = _labels([r[data.label_column].strip() for r in train_rows], data.class_names, path)
    return make_peek(names, ids, has_val, data, [])


def _split_of(row: dict, data) -> str:
    split = row[data.split_column].strip().lower() if data.split_column else "train"
    return "val" if split == "validation" else split


def _read_rows(path: Path, data) -> list[dict]:
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
    return rows


def _labels(raw_labels: list[str], class_names: Optional[list[str]], path: Path):
    """Class names and int label ids: integer labels are ids; other labels are names (sorted, or as given)."""
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


def _image_path(value: str, csv_path: Path) -> Path:
    image = Path(value.strip()).expanduser()
    return image if image.is_absolute() else csv_path.parent / image
