"""KerasHub's `DINOV2Backbone`: `layers_<i>` blocks after the `embeddings`, then a final `layernorm`."""

from __future__ import annotations

from tltf.models.families.base import Family, register_family
from tltf.models.families.transformer import transformer_matcher

# ImageNet's mean and standard deviation, what DINOv2 was trained on, as a scaling of 0–255 pixels.
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET_SCALING = ([1 / (255 * s) for s in _STD], [-m / s for m, s in zip(_MEAN, _STD)])

register_family(Family(
    "hub_dinov2",
    transformer_matcher("layers", ("embeddings",), ("layernorm",)),
    network_prefixes=("hub_dinov2",),
    hub_classes=("DINOV2Backbone",),
    nested=True,
    resizable=True,  # KerasHub interpolates DINOv2's position table to the image size asked for
    default_scaling=IMAGENET_SCALING,  # a Hugging Face folder converted by KerasHub has no converter

))
