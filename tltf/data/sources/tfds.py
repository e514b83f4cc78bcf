"""The `tfds` source: a TensorFlow Datasets dataset, read from `data_dir`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np

from tltf.data.images import standardize
from tltf.data.sources.base import SourceConfig, make_peek
from tltf.data.splits import Split
from tltf.errors import DataError


class TfdsSource(SourceConfig):
    """A TensorFlow Datasets dataset, read from `data_dir`."""

    source: Literal["tfds"]
    name: str
    data_dir: Optional[Path] = None
    splits: dict[Literal["train", "val", "test"], str] = {"train": "train", "test": "test"}
    image_key: str = "image"
    label_key: str = "label"
    download: bool = True


Config = TfdsSource


def load(data):
    builder = _builder(data)
    feature = builder.info.features[data.label_key]
    class_names = data.class_names or list(getattr(feature, "names", []) or [])
    raw = {}
    for split, tfds_split in data.splits.items():
        raw[split] = _read_split(builder, data, split, tfds_split)
    return raw, class_names or None


def peek(data):
    """The builder's metadata would do, but tfds datasets used here are small: load them."""
    raw, names = load(data)
    names = names or [f"class_{i}" for i in range(int(raw["train"].labels.max()) + 1)]
    return make_peek(names, raw["train"].labels, "val" in raw, data, [])


def _builder(data):
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
    return builder


def _read_split(builder, data, split: str, tfds_split: str) -> Split:
    import tensorflow_datasets as tfds

    images, labels = [], []
    for example in tfds.as_numpy(builder.as_dataset(split=tfds_split)):
        images.append(standardize(example[data.image_key][None], data.image_size)[0])
        labels.append(int(example[data.label_key]))
    if not images:
        raise DataError(f"data.splits.{split}: tfds split {tfds_split!r} is empty")
    return Split(np.stack(images), np.asarray(labels, np.int64))
