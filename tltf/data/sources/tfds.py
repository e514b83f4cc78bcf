"""The `tfds` source: a TensorFlow Datasets dataset, read from `data_dir`.

Its images are resized as they stream out of tfds, into memory or, with
`data.cache: disk` (or `auto` above 1 GiB decoded), into an `ImageStore`
keyed by the dataset, version, split and size, with the labels in its
manifest: reused by later runs without reading tfds's images again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np

from tltf.data.images import standardize
from tltf.data.sources.base import ImageFilesConfig, make_peek
from tltf.data.splits import Split
from tltf.errors import DataError


class TfdsSource(ImageFilesConfig):
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
    """Class names and counts from the labels alone: the images are not decoded."""
    import tensorflow_datasets as tfds

    builder = _builder(data)
    feature = builder.info.features[data.label_key]
    examples = builder.as_dataset(split=data.splits["train"], decoders={data.image_key: tfds.decode.SkipDecoding()})
    labels = np.fromiter((int(example[data.label_key]) for example in tfds.as_numpy(examples)), np.int64)
    names = data.class_names or list(getattr(feature, "names", []) or []) or [
        f"class_{i}" for i in range(int(labels.max()) + 1)]
    return make_peek(names, labels, "val" in data.splits, data, [])


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
    from tltf.data.decoded_cache import cache_mode, cached_store, default_cache_dir

    try:
        count = builder.info.splits[tfds_split].num_examples
    except (KeyError, ValueError):
        count = 0  # unknown: memory, as for a small split
    labels = []
    if cache_mode(data, count) == "memory":
        images = list(_resized(builder, data, tfds_split, labels))
        images = np.stack(images) if images else np.empty((0, data.image_size, data.image_size, 3), np.uint8)
    else:
        cache_dir = Path(data.cache_dir or default_cache_dir()).expanduser()
        images, manifest = cached_store(
            cache_dir, _store_key(builder, data, tfds_split), data.image_size,
            lambda: _resized(builder, data, tfds_split, labels), f"tfds {data.name} {tfds_split}",
            details=lambda: {"labels": labels})
        labels = manifest["labels"]
    if not len(labels):
        raise DataError(f"data.splits.{split}: tfds split {tfds_split!r} is empty")
    return Split(images, np.asarray(labels, np.int64))


def _resized(builder, data, tfds_split: str, labels: list):
    """Each example's image at `data.image_size` (RGB uint8), appending its label to `labels`."""
    import tensorflow_datasets as tfds

    for example in tfds.as_numpy(builder.as_dataset(split=tfds_split)):
        labels.append(int(example[data.label_key]))
        yield standardize(example[data.image_key][None], data.image_size)[0]


def _store_key(builder, data, tfds_split: str) -> str:
    """Changes with the dataset, its version and folder, the split, the features read and the size."""
    import hashlib

    from tltf.data.decoded_cache import CACHE_FORMAT

    described = "\n".join([CACHE_FORMAT, "tfds", builder.info.full_name, str(Path(builder.data_dir).resolve()),
                           tfds_split, data.image_key, data.label_key, str(data.image_size)])
    return hashlib.sha256(described.encode()).hexdigest()[:32]
