"""KerasHub's `ResNetBackbone`: ResNet's naming with `stack<S>` stages, behind the model-name prefix a preset
gives its layers; `post_` layers are the top."""

from __future__ import annotations

from tltf.models.families.base import Family, register_family
from tltf.models.families.resnet import resnet_matcher

register_family(Family(
    "hub_resnet",
    resnet_matcher("stack", anchored=False, top_part="post_"),
    network_prefixes=("hub_resnet",),
    hub_classes=("ResNetBackbone",),
    nested=True,
))
