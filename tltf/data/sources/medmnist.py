"""The `medmnist` source: `ROOT/NAME.npz`, downloaded (MD5-checked) when missing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field

from tltf.data.sources.base import SourceConfig, make_peek
from tltf.data.sources.npz import peek_npz, read_npz
from tltf.errors import DataError
from tltf.log import logger

# MedMNIST v2 (28 px) on Zenodo; the MD5 sums are the ones the medmnist package checks.
MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{name}.npz?download=1"
MEDMNIST_MD5 = {"pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f"}
MEDMNIST_CLASS_NAMES = {"pneumoniamnist": ["normal", "pneumonia"]}
# Split sizes of MedMNIST files, for a dry run before the file is downloaded.
MEDMNIST_TRAIN_COUNTS = {"pneumoniamnist": [1214, 3494]}


# As an adaptation target: its train split adapts, its test split evaluates (`sources.adapts_on_train_split`).
TARGET_ADAPTS_ON_TRAIN = True


class MedmnistSource(SourceConfig):
    """A MedMNIST dataset: `ROOT/NAME.npz`, downloaded (MD5-checked) when missing."""

    source: Literal["medmnist"]
    name: str
    root: Path = Path("~/.medmnist")
    url: Optional[str] = Field(None, description="Mirror to download from instead of Zenodo.")
    md5: Optional[str] = None


Config = MedmnistSource


def load(data):
    path = _local_file(data)
    if not path.exists():
        _download(data, path)
    return read_npz(path, data), data.class_names or MEDMNIST_CLASS_NAMES.get(data.name)


def peek(data):
    """From the local file; before a download, from the known split sizes."""
    path = _local_file(data)
    known_names = data.class_names or MEDMNIST_CLASS_NAMES.get(data.name)
    if path.exists():
        return peek_npz(path, data, known_names)
    counts = MEDMNIST_TRAIN_COUNTS.get(data.name)
    if counts is None:
        raise DataError(f"{path}: not found; tltf explain does not download data")
    names = known_names or [f"class_{i}" for i in range(len(counts))]
    return make_peek(names, np.repeat(np.arange(len(counts)), counts), True, data, [])


def _local_file(data) -> Path:
    return Path(data.root).expanduser() / f"{data.name}.npz"


def _download(data, path: Path) -> None:
    import keras

    md5 = data.md5 or MEDMNIST_MD5.get(data.name)
    url = data.url or MEDMNIST_URL.format(name=data.name)
    root = path.parent
    root.mkdir(parents=True, exist_ok=True)
    # Download under a temporary name: Keras leaves a file that fails its hash check in place.
    partial = root / f"{path.name}.download"
    try:
        keras.utils.get_file(fname=partial.name, origin=url, file_hash=md5, hash_algorithm="md5",
                             cache_dir=str(root), cache_subdir="")
    except Exception as error:
        partial.unlink(missing_ok=True)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"{path}: not found and the download from {url} failed ({reason}); "
            f"copy {data.name}.npz into {root} or set data.root to the folder that has it"
        ) from None
    os.replace(partial, path)
    if md5 is None:
        logger.warning(f"no known MD5 for {data.name}; the download was not checked")
