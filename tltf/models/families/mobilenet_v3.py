"""MobileNetV3 (small and large) in keras.applications: `expanded_conv_<i>_` blocks. It has no standard stage
grouping, so a stage is a block. The application normalises its own input."""

from __future__ import annotations

import re

from tltf.models.families.base import BackboneSpec, Family, register_family


def mobilenet_v3_matcher(name: str):
    match = re.match(r"^expanded_conv(?:_(\d+))?_", name)
    if match:
        block = f"block_{int(match.group(1) or 0)}"
        return block, block
    return None  # conv, conv_bn (stem) and conv_1, conv_1_bn (top) are placed by position


register_family(Family(
    "mobilenet_v3", mobilenet_v3_matcher,
    backbones=(BackboneSpec("mobilenet_v3_small", "MobileNetV3Small", "none", "mobilenet_v3", has_alpha=True),
               BackboneSpec("mobilenet_v3_large", "MobileNetV3Large", "none", "mobilenet_v3", has_alpha=True)),
    network_prefixes=("mobilenetv3",),
))
