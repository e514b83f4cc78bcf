"""The target domain: unlabelled images to adapt to, and labelled ones (if any) to evaluate on."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tltf.data.decoded_cache import concatenated_store
from tltf.data.image_store import ImageStore
from tltf.data.sources import adapts_on_train_split, load_raw, load_unlabelled
from tltf.data.splits import Split
from tltf.errors import DataError


@dataclasses.dataclass
class TargetData:
    images: np.ndarray  # uint8 [N,S,S,3] (or an ImageStore), used without labels
    evaluation: Optional[Split]  # labelled target images, for evaluation only

    def summary(self) -> str:
        labelled = f", {len(self.evaluation)} labelled for evaluation" if self.evaluation is not None else ""
        return f"target: {len(self.images)} unlabelled images for adaptation{labelled}"


def load_target(target, image_size: int, class_names: list[str]) -> TargetData:
    """Loads `adaptation.target` at the source's image size.

    A target without labels (an npz with `train_images` only, a folder of
    images without class folders) adapts on its images; an npz's
    `test_images`/`test_labels`, when present, evaluate. A labelled target
    of a source with fixed split files (npz, medmnist:
    `adapts_on_train_split`) adapts on its train split and evaluates on its
    test split when present. Any other source (class
    folders, CSV, TFDS) follows the transductive protocol of the Office-31
    benchmarks: all its images adapt, unlabelled, and its labels serve only
    for evaluation.
    """
    target = target.model_copy(update={"image_size": image_size})
    unlabelled = load_unlabelled(target)
    if unlabelled is not None:  # images without labels; labelled ones, if any, evaluate
        return TargetData(*unlabelled)
    raw, names = load_raw(target)
    if adapts_on_train_split(target):  # label ids in fixed split files: the recipe names the classes
        return TargetData(raw["train"].images, raw.get("test"))
    if names and list(names) != list(class_names):
        raise DataError(f"adaptation.target: classes {names} differ from the source's {class_names}; "
                        "use the same class folders in both domains")
    if len(raw) == 1:  # one folder of classes: its images stay where the source keeps them (memory or disk)
        (split,) = raw.values()
        return TargetData(split.images, split)
    # Several split folders: one array, or one store on disk when any of them is kept there.
    parts = [split.images for split in raw.values()]
    images = concatenated_store(parts) if any(isinstance(p, ImageStore) for p in parts) else np.concatenate(parts)
    labels = np.concatenate([split.labels for split in raw.values()])
    return TargetData(images, Split(images, labels))
