"""What every data source shares: its common settings, path checks and the dry-run summary (`DataPeek`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field, model_validator

from tltf.config import Section
from tltf.data.subsample import subsample_count
from tltf.errors import DataError


class SourceConfig(Section):
    """Settings every source has (the recipe's `data` section, beside `source` and the source's own keys)."""

    image_size: int = Field(224, ge=1, description="Square input size in pixels.")
    class_names: Optional[list[str]] = Field(
        None, description="Names for label ids 0..C-1 (npz, medmnist, tfds); folders name their own."
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="Held out of train, stratified and seeded, when the source has no val split."
    )
    test_fraction: Optional[float] = Field(
        None, gt=0, lt=1, description="Held out of train as the test split, stratified, when the source has none; "
                                      "seeded by subsample_seed, so every training seed is tested on the same images.")
    class_weight: Literal["auto", "none"] = "none"
    train_fraction: Optional[float] = Field(
        None, gt=0, le=1, description="Train on this share of each class of the training split (stratified, nested: "
                                      "a smaller fraction's images are among a larger one's); val and test stay whole.")
    train_per_class: Optional[int] = Field(None, ge=1, description="Train on this many images of each class.")
    subsample_seed: int = Field(
        0, description="Which images train_fraction / train_per_class keep; separate from train.seed, so runs with "
                       "different training seeds see the same images.")

    @model_validator(mode="after")
    def _one_subsample(self):
        if self.train_fraction is not None and self.train_per_class is not None:
            raise ValueError("give train_fraction or train_per_class, not both")
        return self


class DicomConfig(Section):
    """How DICOM files become images (`tltf.data.dicom`).

    Example:
        data: {source: directory, path: studies/, dicom: {window: [40, 400]}}
    """

    window: Union[Literal["auto", "none"], tuple[float, float]] = Field(
        "auto", description="auto: each file's own VOI window or LUT, else the image's full range; none: the "
                            "image's full range whatever the file says; [centre, width]: this window for every file.")


class ImageFilesConfig(SourceConfig):
    """Settings of the sources whose images may not fit in memory (`directory`, `csv`, `tfds`): where decoded
    images are kept."""

    cache: Literal["auto", "memory", "disk"] = Field(
        "auto", description="memory: decode every image into RAM; disk: decode once into a file under cache_dir "
                            "and read batches from it, reused while the files are unchanged; auto: disk when a "
                            "split's decoded images exceed 1 GiB.")
    cache_dir: Optional[Path] = Field(None, description="Where decoded images are kept (default $TLTF_CACHE/images, "
                                                        "~/.cache/tltf/images).")
    dicom: DicomConfig = DicomConfig()


@dataclasses.dataclass
class DataPeek:
    """What a dry run needs from the data, read without decoding images.

    Args:
        class_names: the class names.
        train_count: images that will train (after a carved val split).
        class_counts: training images per class.
        warnings: advice about the data (pixel range, class balance).
    """

    class_names: list[str]
    train_count: int
    class_counts: list[int]
    warnings: list[str]


def existing(path, key: str) -> Path:
    """`path`, expanded, or a `DataError` naming the recipe key when it does not exist."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: {key} does not exist; check the path (relative paths start at {os.getcwd()})")
    return path


def make_peek(names, labels: np.ndarray, has_val: bool, data, warnings) -> DataPeek:
    """A `DataPeek` from training labels, with the class-balance advice."""
    counts = np.bincount(labels, minlength=len(names)).tolist()
    kept = (1.0 - (data.test_fraction or 0.0)) * (1.0 if has_val else 1.0 - data.val_fraction)
    train_count = subsample_count([int(round(count * kept)) for count in counts], data)
    present = [c for c in counts if c]
    # Moderate imbalance needs nothing: AUC ignores it and the decision threshold is chosen on val. Severe
    # imbalance can leave a head predicting the majority class only, which class weights prevent.
    if data.class_weight == "none" and len(present) > 1 and max(present) >= 10 * min(present):
        warnings.append(f"data.class_weight: classes are severely imbalanced ({' / '.join(map(str, counts))} training "
                        "images) and class_weight is none; set it to auto to weight them (tltf applies it as sample "
                        "weights, which Keras never ignores)")
    if data.class_weight == "auto" and len(present) > 1 and max(present) < 1.05 * min(present):
        warnings.append("data.class_weight: auto has no effect here: the classes are balanced")
    return DataPeek(list(names), int(train_count), counts, warnings)


def range_warnings(sample: np.ndarray, path: Path) -> list[str]:
    """Advice when array images are not raw 0–255 pixels."""
    if sample.size == 0:
        return []
    if np.issubdtype(sample.dtype, np.floating) and float(sample.max()) <= 1.0:
        return [f"{path}: images are floats in [0, 1] but tltf's backbones expect raw 0–255 pixels; they would be "
                "clipped to 0 and 1. Multiply them by 255 before training"]
    if float(sample.max()) > 255:
        return [f"{path}: pixel values up to {float(sample.max()):g}, above the 0–255 the backbones expect; "
                "they would be clipped to 255. Rescale them to 0–255"]
    return []
