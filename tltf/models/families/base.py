"""What a backbone family is, and the registry that holds them.

A *family* is a set of backbones that share a layer layout: ResNet50 and ResNet101, EfficientNet-B0 to B3,
every KerasHub ViT preset. Each family is one module in this package that describes itself with a `Family`
and registers it; everything else in tltf asks the registry (`get`, `for_network_name`, `for_hub_class`)
and never names a family itself. Adding a family is one module and its test.

In the style of timm's `group_matcher`: a family's `group_matcher` says, for one layer name, which block and
which stage the layer belongs to. Pure functions of layer names, testable without building a model.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Optional

# The unit names every block map shares (`tltf.models.blocks`).
STEM = "stem"
TOP = "top"

# `(block, stage)` for a layer the family names, None for one it leaves to its position.
GroupMatcher = Callable[[str], Optional[tuple]]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Example:
        BackboneSpec("resnet50", "ResNet50", "caffe", "resnet")

    Args:
        name: the recipe name, lowercase snake_case (`resnet50`).
        constructor: the `keras.applications` attribute name (`"ResNet50"`),
            or a callable `(input_shape, weights, **kwargs) -> keras.Model`
            returning a pooled feature model.
        preprocessing: the mode of `tltf.layers.ImagePreprocessing`:
            `"caffe"`, `"tf"`, `"torch"` or `"none"` (the application
            normalises its own input).
        family: groups backbones that share a block layout.
        min_size: the smallest square input in pixels.
        has_alpha: whether `model.alpha` (MobileNet width) applies.
        constructor_kwargs: fixed keyword arguments for the constructor.
        needs_preset: built from `model.preset` (KerasHub), which the
            constructor takes as `preset=`.
    """

    name: str
    constructor: str | Callable
    preprocessing: str
    family: str
    min_size: int = 32
    has_alpha: bool = False
    constructor_kwargs: tuple = ()
    needs_preset: bool = False


@dataclasses.dataclass(frozen=True)
class CachedWeights:
    """What a keras.applications weights file is for, and the names Keras looks for it under.

    Args:
        backbone: the registered backbone name (`mobilenet_v2`).
        names: every file name in `$KERAS_HOME/models/` that Keras reads these weights from.
        image_size: an input size to check that the cached weights load at.
        options: `create_backbone` keyword arguments the weights need (`{"alpha": 0.35}`).
    """

    backbone: str
    names: tuple
    image_size: int = 224
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Family:
    """One backbone family: what recognises it, what builds it, how its layers group into blocks and stages.

    Example:
        register_family(Family(
            "resnet", group_matcher=resnet_matcher("conv"),
            backbones=(BackboneSpec("resnet50", "ResNet50", "caffe", "resnet"),),
            network_prefixes=("resnet",)))

    Args:
        name: the family's name, recorded on tltf's backbone wrapper and read back by block maps.
        group_matcher: layer name → `(block, stage)`, or None for a layer placed by its position (before the
            first block: stem; after the last: top; between blocks: the block before it).
        backbones: the `keras.applications` backbones of this family a recipe can name.
        network_prefixes: how the names of this family's backbone networks start (`resnet50v2`), so a user's
            model with a nested backbone tltf did not build is recognised.
        hub_classes: the KerasHub backbone classes (names in `keras_hub.models`) this family wraps.
        hub_towers: KerasHub classes of two-tower presets whose image tower (`vision_encoder`) is of this
            family; tltf takes that tower and the preset's `vision_projection`, L2-normalised.
        resizable: its KerasHub backbones take another image size than their preset's, interpolating their
            position table (`from_preset(image_shape=...)`), at any multiple of their `patch_size`.
        default_scaling: `(scale, offset)` (numbers or one per channel) of raw 0–255 pixels for a preset folder
            that has no image converter KerasHub can load; None: scaled to [0, 1].
        cached_weights: `file name -> CachedWeights or None`: for a keras.applications weights file of this
            family, the backbone it is for and every name Keras looks for it under in its cache (`tltf weights
            add`); None: files are cached under their own name only.
        text_embeddings: for a two-tower family, `(loaded preset, preset, prompts per class) -> (one [P, D]
            array of text embeddings per class, logit scale)`: what a zero-shot head is made of
            (`tltf.models.zero_shot`). None: no zero-shot.
        nested: whether its blocks sit inside sublayers of the backbone network (a KerasHub model, a
            transformer encoder), so block maps look inside layers the matcher does not name.
    """

    name: str
    group_matcher: GroupMatcher
    backbones: tuple = ()
    network_prefixes: tuple = ()
    hub_classes: tuple = ()
    hub_towers: tuple = ()
    nested: bool = False
    resizable: bool = False
    default_scaling: Optional[tuple] = None
    cached_weights: Optional[Callable] = None
    text_embeddings: Optional[Callable] = None


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Adds `family` to the registry, replacing any of the same name."""
    _FAMILIES[family.name] = family
    return family


def get(name: Optional[str]) -> Family:
    """The family of that name; the numbered-blocks fallback for an unknown name or None."""
    return _FAMILIES.get(name) or NUMBERED


def names() -> list[str]:
    return sorted(_FAMILIES)


def families() -> list[Family]:
    return [_FAMILIES[name] for name in names()]


def for_network_name(network_name: str) -> Optional[Family]:
    """The family whose network prefix starts `network_name` (the longest that does), or None."""
    name = network_name.lower()
    matches = [(len(prefix), family) for family in _FAMILIES.values() for prefix in family.network_prefixes
               if name.startswith(prefix)]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def for_hub_class(class_name: str) -> Optional[Family]:
    """The family that wraps the KerasHub backbone class of that name, or None."""
    return next((family for family in _FAMILIES.values() if class_name in family.hub_classes), None)


def hub_class_names() -> list[str]:
    """Every KerasHub class some family wraps, as a backbone or as a two-tower preset's image tower."""
    return sorted(name for family in _FAMILIES.values() for name in (*family.hub_classes, *family.hub_towers))


def numbered_blocks(name: str):
    """`block<N>_...` layers: the fallback for backbones of no registered family (tltf's tests, simple user
    backbones)."""
    match = re.match(r"^(block(\d+))_", name)
    if match:
        return match.group(1), match.group(1)
    return None


NUMBERED = Family("numbered", numbered_blocks)
