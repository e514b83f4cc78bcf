"""Data sources, one module each, registered by name: `npz`, `directory`, `csv`, `medmnist`, `tfds`.

Each module has `Config` (its recipe `data` section, a pydantic model),
`load(config) -> ({split: Split}, class names or None)` and
`peek(config) -> DataPeek` (classes and counts for a dry run, no pixels); a
source that can also hold images without labels (an adaptation target) has
`unlabelled(config) -> (images, labelled Split or None)`, None when its
images are labelled. A source whose splits are fixed files of label ids (npz,
medmnist) sets `TARGET_ADAPTS_ON_TRAIN = True`: as an adaptation target its
train split adapts and its test split evaluates; any other source's target
adapts on all its images, transductively (`adapts_on_train_split`).
The recipe's `data` union and the adaptation target loader are built from
`SOURCES`. Every source ends in the same form: uint8 RGB arrays at
`data.image_size`, integer labels, class names, and train/val/test splits. A
source without a val split gets a stratified, seeded one carved from train; a
source without a test split has `test = None` and is evaluated on val.

Problems users can fix raise `DataError` naming the file, folder or key.
"""

from __future__ import annotations

from typing import Annotated, Optional, Union

from pydantic import Field

from tltf.data.sources import csv, directory, medmnist, npz, tfds
from tltf.data.sources.base import DataPeek, SourceConfig
from tltf.data.splits import ImageSplits, finish_splits

SOURCES = {module.Config.model_fields["source"].annotation.__args__[0]: module
           for module in (npz, directory, csv, medmnist, tfds)}
SOURCE_NAMES = tuple(SOURCES)
CONFIGS = tuple(module.Config for module in SOURCES.values())
# The recipe's `data` section (and an adaptation target): one of the sources' configs, chosen by `source`.
DataSource = Annotated[Union[CONFIGS], Field(discriminator="source")]


def load_raw(data) -> tuple[dict, Optional[list[str]]]:
    """The source's own splits (`{"train": Split, ...}`) and class names, before any val split is carved."""
    return SOURCES[data.source].load(data)


def load_splits(data, seed: int = 0) -> ImageSplits:
    """Loads the recipe's `data` section into `ImageSplits`.

    Example:
        splits = load_splits(recipe.data, seed=recipe.train.seed)

    Args:
        data: a validated data section (one of the sources' `Config`s).
        seed: seeds the carved validation split.
    """
    raw, class_names = load_raw(data)
    return finish_splits(raw, class_names, data, seed)


def adapts_on_train_split(data) -> bool:
    """Whether an adaptation target of this source adapts on its train split and evaluates on its test split
    (label ids in fixed split files), rather than adapting on all its images, transductively."""
    return getattr(SOURCES[data.source], "TARGET_ADAPTS_ON_TRAIN", False)


def load_unlabelled(data):
    """`(images, labelled evaluation Split or None)` when the source holds its images without labels (an npz of
    images only, a folder of images without class folders); None when it has labels, or cannot hold them
    without."""
    reader = getattr(SOURCES[data.source], "unlabelled", None)
    return reader(data) if reader is not None else None


def peek_data(data) -> DataPeek:
    """Classes, training-set size and warnings, reading labels and folder names only.

    Raises:
        DataError: the data cannot be found.
    """
    return SOURCES[data.source].peek(data)


__all__ = [
    "CONFIGS", "DataPeek", "DataSource", "SOURCES", "SOURCE_NAMES", "SourceConfig", "load_raw", "load_splits",
    "load_unlabelled", "peek_data",
]
