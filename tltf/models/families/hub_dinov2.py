"""KerasHub's `DINOV2Backbone`: `layers_<i>` blocks after the `embeddings`, then a final `layernorm`."""

from __future__ import annotations

from tltf.models.families.base import Family, register_family
from tltf.models.families.transformer import transformer_matcher

register_family(Family(
    "hub_dinov2",
    transformer_matcher("layers", ("embeddings",), ("layernorm",)),
    network_prefixes=("hub_dinov2",),
    hub_classes=("DINOV2Backbone",),
    nested=True,
))
