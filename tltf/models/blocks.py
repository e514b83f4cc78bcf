"""Block maps: every backbone split into ordered units, from the stem to the head.

A *block* is a backbone family's own building block (`conv2_block1`,
`block_5`, `block3b`, `stage_2_block_1`); a *stage* groups blocks that work
at one resolution. Every layer, and so every variable, belongs to exactly one
unit; BatchNorm layers go with their block. The order is the network's:
`stem`, the blocks, `top` (the layers after the last block, if any), then
`head`. This shared map is what "unfreeze one block" and "decay per layer"
mean on every backbone.

Pure functions of layer names, in the style of timm's
`param_groups_layer_decay`: easy to test without building a model. Each
family says how its layers group (`tltf.models.families`); this module
knows no family.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from tltf.models import families
from tltf.models.anatomy import backbone_network, family_of, head_of, variable_key
from tltf.models.families.base import STEM, TOP

HEAD = "head"
UNITS = ("block", "stage")


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
    matcher = families.get(family).group_matcher
    named = [matcher(name) for name in layer_names]
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
        family: the backbone family (`tltf.models.families`).
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

    The network's own layers; for a nested family (`Family.nested`), a layer the family's matcher does not name
    and that is made of sublayers without holding variables itself (a nested KerasHub model, a transformer
    encoder) is replaced by its sublayers, recursively.
    """
    import keras

    from tltf._keras_internals import own_variables, sublayers

    described = families.get(family)
    parts = []
    for layer in sublayers(network) if described.nested else network.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name.startswith("input"):
            continue
        if (described.nested and described.group_matcher(layer.name) is None and sublayers(layer)
                and not own_variables(layer)):
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
                to `block<N>_` layer names (`tltf.models.families.NUMBERED`).
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
