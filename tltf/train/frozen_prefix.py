"""The frozen-prefix cache: backbone blocks that stay frozen through a whole phase, computed once per image.

A gradual-unfreezing phase shorter than the backbone never unfreezes its lowest blocks, yet an uncached fit
recomputes them for every image at every epoch. Their output is the same every epoch when the images are not
augmented and nothing in them is random at training time (their BatchNorm is frozen with them), so the phase can
fit the blocks above them, and the head, on that output computed once: the same steps, the same weights.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np

from tltf.log import logger
from tltf.models.anatomy import backbone_network, backbone_of, head_of
from tltf.models.blocks import HEAD
from tltf.train.targets import FullModel, LabelledData

# A cache larger than this is not worth the memory (a low cut of a large image): the phase runs uncached.
CACHE_LIMIT_BYTES = 2 * 1024**3


@dataclasses.dataclass(frozen=True)
class PrefixCut:
    """Where a backbone's frozen prefix ends.

    Args:
        units: the frozen units, stem first.
        boundary: the one tensor of the backbone network that carries everything from them to the rest.
        below: the backbone network from its input to `boundary` (the frozen units; their layers, shared).
        above: the backbone network from `boundary` to its output (the rest; their layers, shared).
    """

    units: tuple
    boundary: object
    below: object
    above: object

    def text(self) -> str:
        return units_text(self.units)


def units_text(units) -> str:
    """e.g. "stem–block_11 (13 units)"."""
    span = units[0] if len(units) == 1 else f"{units[0]}–{units[-1]}"
    return f"{span} ({len(units)} unit{'s' if len(units) != 1 else ''})"


def frozen_units(segments) -> list[str]:
    """The backbone units, stem first, that no segment of a phase trains, up to the first one that does."""
    frozen = []
    for position, block in enumerate(segments[0].blocks):
        if block["name"] == HEAD or any(segment.blocks[position]["trainable"] for segment in segments):
            break
        frozen.append(block["name"])
    return frozen


def find_cut(model, block_map, units: list[str], images: int):
    """The `PrefixCut` after `units` of `model`'s backbone, or why there is none (a string).

    Args:
        model: the classifier.
        block_map: its `BlockMap`.
        units: the frozen units, stem first (`frozen_units`).
        images: how many images the cache would hold (its memory is checked).
    """
    import keras

    net = backbone_network(model)
    order = {id(layer): index for index, layer in enumerate(net.layers)}
    prefix = [layer for unit in units for layer in block_map.layers_of(model, unit)]
    if not all(id(layer) in order for layer in prefix):
        return "its blocks sit inside a nested model"
    boundary = max(prefix, key=lambda layer: order[id(layer)]).output
    try:
        above = keras.Model(boundary, net.output, name="above_frozen_prefix")
    except ValueError:
        return "more than one tensor runs from its frozen blocks to the rest"
    inside = {id(layer) for layer in above.layers}
    if any(id(layer) in inside for layer in prefix):
        return "more than one tensor runs from its frozen blocks to the rest"
    below = keras.Model(net.input, boundary, name="frozen_prefix")
    if getattr(backbone_of(model), "mode", "train") == "train" and any(
            "Dropout" in type(layer).__name__ for layer in below.layers):
        return "its frozen blocks have dropout, random at every training step"
    size = math.prod(boundary.shape[1:]) * 4 * images
    if size > CACHE_LIMIT_BYTES:
        return f"their output would take {size / 1024**3:.1f} GB"
    return PrefixCut(tuple(units), boundary, below, above)


class AboveFrozenPrefix(FullModel):
    """Fits the backbone above its frozen prefix, and the head, on the prefix's output computed once.

    Exact where the prefix gives the same output every epoch: unaugmented images, no dropout in it (its BatchNorm
    is frozen with it). The fitted model is made of the classifier's own layers, so training it trains the
    classifier. Callbacks that set trainable flags by block (`GradualUnfreezing`) are given the classifier.

    Args:
        model: the full classifier.
        task: the `tltf.task.Task`.
        data: the `LabelledData` whose images give the prefix's output.
        cut: the `PrefixCut`.
        verbose: the extraction's progress bar.
    """

    def __init__(self, model, task, data: LabelledData, cut: PrefixCut, verbose: int = 2):
        import keras

        from tltf.layers import BatchNormPolicy

        super().__init__(model, task, data)
        self.classifier = model
        self.cut = cut
        self.cached = f"{cut.text()} (frozen all phase)"
        self.verbose = verbose
        mode = getattr(backbone_of(model), "mode", "train")
        inputs = keras.Input(cut.boundary.shape[1:], name="frozen_prefix_output")
        features = BatchNormPolicy(cut.above, mode=mode, name="backbone_above_prefix")(inputs)
        self.model = keras.Model(inputs, head_of(model)(features), name="trained_above_frozen_prefix")
        self._inputs: Optional[list] = None

    def datasets(self):
        if self._inputs is None:
            logger.info(f"computing the output of the frozen blocks {self.cut.text()} once (they stay frozen all "
                        "phase and images are not augmented)")
            splits = self.data.splits
            self._inputs = prefix_outputs(self.classifier, self.cut, splits.train.images, splits.val.images,
                                          batch_size=self.data.batch_size, verbose=self.verbose)
        return self.data.datasets(*self._inputs)


def prefix_extractor(model, cut: PrefixCut):
    """A Keras model from `model`'s images to the frozen prefix's output (its `predict` runs in inference mode,
    as the frozen blocks run)."""
    import keras

    preprocessing = keras.Model(model.input, backbone_of(model).input, name="backbone_preprocessing")
    return keras.Sequential([preprocessing, cut.below], name="frozen_prefix_extractor")


def prefix_outputs(model, cut: PrefixCut, *image_sets, batch_size: int, verbose: int = 1) -> list[np.ndarray]:
    """The frozen prefix's output (float32) for each image set."""
    from tltf.data.pipeline import images_in_batches

    extractor = prefix_extractor(model, cut)
    return [extractor.predict(images_in_batches(images, batch_size), verbose=verbose).astype("float32")
            for images in image_sets]
