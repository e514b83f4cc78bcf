"""KerasHub's `ViTBackbone`: `transformer_block_<i>` numbered from 1; `ln` is the encoder's final LayerNorm."""

from __future__ import annotations

from tltf.models.families.base import Family, register_family
from tltf.models.families.transformer import transformer_matcher

register_family(Family(
    "hub_vit",
    transformer_matcher("transformer_block", ("vit_patching_and_embedding", "patching_and_embedding"), ("ln",),
                        first=1),
    network_prefixes=("hub_vit",),  # tltf's wrapper around a KerasHub backbone is named after its family
    hub_classes=("ViTBackbone",),
    nested=True,
))
