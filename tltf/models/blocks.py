"""Block maps: every backbone split into ordered units, from the stem to the head.

A *block* is a backbone family's own building block (`conv2_block1`,
`block_5`, `block3b`, `stage_2_block_1`); a *stage* groups blocks that work
at one resolution. Every layer, and so every variable, belongs to exactly one
unit; BatchNorm layers go with their block. The order is the network's:
`stem`, the blocks, `top` (the layers after the last block, if any), then
`head`. This shared map is what "unfreeze one block" and "decay per layer"
mean on every backbone.

Pure functions of layer names, in the style of timm's
`param_groups_layer_decay`: easy to test without building a model.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from tltf.models.anatomy import backbone_network, family_of, head_of, variable_key
from tltf.models.hub import HUB_FAMILIES

HEAD = "head"
STEM = "stem"
TOP = "top"
UNITS = ("block", "stage")

# MobileNetV2's 17 inverted-residual blocks grouped by output resolution and width.
_MOBILENET_V2_STAGES = [1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7]


def _resnet_like(name: str):
    match = re.match(r"^(conv(\d+))_block(\d+)_", name)
    if match:
        return f"{match.group(1)}_block{match.group(3)}", match.group(1)
    if re.match(r"^(conv1|pool1)_", name):
        return STEM, STEM
    match = re.match(r"^(pool(\d+))_", name)  # DenseNet transitions
    if match:
        return match.group(1), match.group(1)
    if name in ("post_bn", "post_relu", "bn", "relu", "avg_pool"):
        return TOP, TOP
    return None


def _mobilenet_v2(name: str):
    if name.startswith("expanded_conv_"):
        return "block_0", "stage_1"
    match = re.match(r"^block_(\d+)_", name)
    if match:
        index = int(match.group(1))
        return f"block_{index}", f"stage_{_MOBILENET_V2_STAGES[index]}"
    if name in ("Conv1", "bn_Conv1", "Conv1_relu", "Conv1_pad"):
        return STEM, STEM
    if name in ("Conv_1", "Conv_1_bn", "out_relu", "global_average_pooling2d"):
        return TOP, TOP
    return None


def _mobilenet_v3(name: str):
    match = re.match(r"^expanded_conv(?:_(\d+))?_", name)
    if match:
        block = f"block_{int(match.group(1) or 0)}"
        return block, block  # MobileNetV3 has no standard stage grouping: a stage is a block
    return None  # conv, conv_bn (stem) and conv_1, conv_1_bn (top) are placed by position


def _efficientnet(name: str):
    match = re.match(r"^(block(\d+)[a-z])_", name)
    if match:
        return match.group(1), f"block{match.group(2)}"
    if name.startswith("stem_") or name in ("rescaling", "normalization", "rescaling_1"):
        return STEM, STEM
    if name.startswith("top_"):
        return TOP, TOP
    return None


def _convnext(name: str):
    match = re.search(r"_stage_(\d+)_block_(\d+)_", name)
    if match:
        return f"stage_{match.group(1)}_block_{match.group(2)}", f"stage_{match.group(1)}"
    match = re.search(r"_downsampling_block_(\d+)$", name)
    if match:
        # The downsampling layer opens the next stage.
        stage = int(match.group(1)) + 1
        return f"stage_{stage}_downsampling", f"stage_{stage}"
    if name.endswith("_stem") or name.endswith("_prestem_normalization"):
        return STEM, STEM
    if name in ("layer_normalization", "head_layernorm"):
        return TOP, TOP
    return None


def _numbered_blocks(name: str):
    """`block<N>_...` layers (tltf's tests, simple user backbones)."""
    match = re.match(r"^(block(\d+))_", name)
    if match:
        return match.group(1), match.group(1)
    return None


# KerasHub backbones (`tltf.models.hub`). Their layer names carry the model's name as a prefix when loaded from a
# preset (`dinov2_backbone_embeddings`, `clip_vision_encoder_encoder_block_0`), so the rules match endings.
# Transformer blocks become `block_0` … `block_<n-1>` in every family (a transformer has no stages: a stage is a
# block).
def _transformer_rule(block: str, stem: tuple, top: tuple, first: int = 0):
    """The rule of a KerasHub transformer whose blocks are `<block>_<i>` (numbered from `first`) and whose stem
    and top layers are named (or end in `_`) one of `stem`, `top`; the stem is tested first."""
    pattern = re.compile(rf"(?:^|_){block}_(\d+)$")

    def named(name: str, endings: tuple) -> bool:
        return any(name == ending or name.endswith("_" + ending) for ending in endings)

    def rule(name: str):
        match = pattern.search(name)
        if match:
            unit = f"block_{int(match.group(1)) - first}"
            return unit, unit
        if named(name, stem):
            return STEM, STEM
        if named(name, top):
            return TOP, TOP
        return None

    return rule


# ViT numbers its blocks from 1; `ln` is its encoder's final LayerNorm. A CLIP preset's projection is top too.
_hub_vit = _transformer_rule("transformer_block", ("vit_patching_and_embedding", "patching_and_embedding"), ("ln",),
                             first=1)
_hub_dinov2 = _transformer_rule("layers", ("embeddings",), ("layernorm",))
_hub_clip_vision = _transformer_rule("encoder_block", ("embedding", "pre_layer_norm"),
                                     ("layer_norm", "vision_projection"))


def _hub_resnet(name: str):
    match = re.search(r"(?:^|_)(stack(\d+))_block(\d+)_", name)
    if match:
        return f"{match.group(1)}_block{match.group(3)}", match.group(1)
    if re.search(r"(?:^|_)(conv1|pool1)_", name):
        return STEM, STEM
    if re.search(r"(?:^|_)post_", name):
        return TOP, TOP
    return None


FAMILY_RULES = {
    "resnet": _resnet_like,
    "resnet_v2": _resnet_like,
    "densenet": _resnet_like,
    "mobilenet_v2": _mobilenet_v2,
    "mobilenet_v3": _mobilenet_v3,
    "efficientnet": _efficientnet,
    "efficientnet_v2": _efficientnet,
    "convnext": _convnext,
    "hub_vit": _hub_vit,
    "hub_dinov2": _hub_dinov2,
    "hub_clip_vision": _hub_clip_vision,
    "hub_resnet": _hub_resnet,
}

# Families whose blocks sit inside sublayers of the backbone network (tltf's wrapper around a KerasHub model; a
# transformer encoder layer holding its blocks): their block maps look inside what the rules do not name.
NESTED_FAMILIES = tuple(HUB_FAMILIES.values())


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of a block map: its name, its stage and its layers, in network order."""

    name: str
    stage: str
    layers: tuple


def layer_units(layer_names: list[str], family: str) -> list[tuple[str, str]]:
    """(block, stage) for each layer name, in order.

    Layers the family's rules do not name take their place from position:
    before the first block they are `stem`, after the last block `top`, and
    between blocks they join the block before them (merge and activation
    layers without weights).

    Example:
        layer_units(["conv1_conv", "conv2_block1_1_conv", "post_bn"], "resnet_v2")
        # [("stem", "stem"), ("conv2_block1", "conv2"), ("top", "top")]
    """
    rule = FAMILY_RULES.get(family, _numbered_blocks)
    named = [rule(name) for name in layer_names]
    block_positions = [i for i, unit in enumerate(named) if unit and unit[0] not in (STEM, TOP)]
    first = block_positions[0] if block_positions else len(layer_names)
    last = block_positions[-1] if block_positions else -1
    result, current = [], (STEM, STEM)
    for i, unit in enumerate(named):
        if unit is None:
            unit = (STEM, STEM) if i < first else (TOP, TOP) if i > last else current
        result.append(unit)
        current = unit
    return result


def group_units(layer_names: list[str], family: str, unit: str = "block") -> list[Unit]:
    """The backbone's ordered units (stem → top) with their layer names.

    Args:
        layer_names: the backbone's layers in network order.
        family: the backbone family (`BackboneSpec.family`).
        unit: `"block"` or `"stage"`.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    units: dict[str, list] = {}
    stages: dict[str, str] = {}
    for name, (block, stage) in zip(layer_names, layer_units(layer_names, family)):
        key = block if unit == "block" else stage
        units.setdefault(key, []).append(name)
        stages.setdefault(key, stage)
    ordered = sorted(units, key=lambda key: (key != STEM, key == TOP, _first_index(units[key], layer_names)))
    return [Unit(key, stages[key], tuple(units[key])) for key in ordered]


def _first_index(layers: list[str], layer_names: list[str]) -> int:
    return layer_names.index(layers[0])


def backbone_parts(network, family: str) -> list:
    """The layers a block map places, in network order, without input layers.

    The network's own layers; for a nested family (`NESTED_FAMILIES`), a layer the family's rules do not name
    and that is made of sublayers without holding variables itself (a nested KerasHub model, a transformer
    encoder) is replaced by its sublayers, recursively.
    """
    import keras

    from tltf._keras_internals import own_variables, sublayers

    rule = FAMILY_RULES.get(family, _numbered_blocks)
    parts = []
    for layer in sublayers(network) if family in NESTED_FAMILIES else network.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name.startswith("input"):
            continue
        if family in NESTED_FAMILIES and rule(layer.name) is None and sublayers(layer) and not own_variables(layer):
            parts.extend(backbone_parts(layer, family))
        else:
            parts.append(layer)
    return parts


@dataclasses.dataclass
class BlockMap:
    """A model's units from the stem to the head, with their variables.

    Example:
        block_map = BlockMap.of(model, unit="block")
        block_map.names[-1]                  # "head"
        block_map.path_to_unit()["conv1_conv/kernel"]   # "stem"

    Args:
        units: ordered backbone units, then the head.
        variables: unit name → its variables (trainable or not).
    """

    units: list[Unit]
    variables: dict
    layers: dict = dataclasses.field(default_factory=dict, repr=False)  # layer name → layer, for layers_of

    @classmethod
    def of(cls, model, unit: str = "block", family: Optional[str] = None) -> "BlockMap":
        """The block map of a tltf model, or of a user's model with a nested `keras.applications` backbone.

        Args:
            model: the classifier.
            unit: `"block"` or `"stage"`.
            family: the backbone family; default the one recorded on the model
                (`tltf.models.anatomy.family_of`). Unknown families fall back
                to `block<N>_` layer names.
        """
        backbone = backbone_network(model)
        if family is None:
            family = family_of(model) or "numbered"
        layers = backbone_parts(backbone, family)
        by_name = {layer.name: layer for layer in layers}
        units, variables = [], {}
        for candidate in group_units([layer.name for layer in layers], family, unit):
            unit_variables = [v for name in candidate.layers for v in by_name[name].weights]
            if unit_variables:  # a unit of pooling or merge layers only has nothing to train or freeze
                units.append(candidate)
                variables[candidate.name] = unit_variables
        head = head_of(model)
        units.append(Unit(HEAD, HEAD, (head.name,)))
        variables[HEAD] = list(head.weights)
        return cls(units, variables, by_name)

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.units]

    def layers_of(self, model, name: str) -> list:
        if name == HEAD:
            return [head_of(model)]
        unit = next(u for u in self.units if u.name == name)
        if self.layers:
            return [self.layers[layer] for layer in unit.layers]
        backbone = backbone_network(model)
        return [backbone.get_layer(layer) for layer in unit.layers]

    def path_to_unit(self) -> dict[str, str]:
        """`variable_key` → unit name, for every variable of the model's backbone and head."""
        return {variable_key(v): name for name, variables in self.variables.items() for v in variables}

    def params(self, name: str) -> int:
        import numpy as np

        return int(sum(np.prod(v.shape) for v in self.variables[name]))
