"""KerasHub's `EfficientNetBackbone` (EfficientNet, EfficientNet-Lite, EfficientNetV2 presets): keras.applications'
naming (`stem_`, `block<S><b>_`, `top_`), inside tltf's wrapper around the preset."""

from __future__ import annotations

from tltf.models.families.base import Family, register_family
from tltf.models.families.efficientnet import efficientnet_matcher

register_family(Family(
    "hub_efficientnet", efficientnet_matcher,
    network_prefixes=("hub_efficientnet",),
    hub_classes=("EfficientNetBackbone",),
    nested=True,
))
