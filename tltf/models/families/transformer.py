"""The group matcher shared by KerasHub's transformers (not a family itself).

Their layer names carry the model's name as a prefix when loaded from a preset
(`dinov2_backbone_embeddings`, `clip_vision_encoder_encoder_block_0`), so the matcher matches endings.
Transformer blocks become `block_0` … `block_<n-1>` in every family; a transformer has no stages, so a stage
is a block.
"""

from __future__ import annotations

import re

from tltf.models.families.base import STEM, TOP


def transformer_matcher(block: str, stem: tuple, top: tuple, first: int = 0):
    """The matcher of a transformer whose blocks are `<block>_<i>` (numbered from `first`) and whose stem and
    top layers are named (or end in `_`) one of `stem`, `top`; the stem is tested first."""
    pattern = re.compile(rf"(?:^|_){block}_(\d+)$")

    def named(name: str, endings: tuple) -> bool:
        return any(name == ending or name.endswith("_" + ending) for ending in endings)

    def matcher(name: str):
        match = pattern.search(name)
        if match:
            unit = f"block_{int(match.group(1)) - first}"
            return unit, unit
        if named(name, stem):
            return STEM, STEM
        if named(name, top):
            return TOP, TOP
        return None

    return matcher
