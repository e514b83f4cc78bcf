"""EfficientNet and EfficientNetV2 in keras.applications: `block<S><b>_` layers (block `block2a` of stage
`block2`). Both normalise their own input."""

from __future__ import annotations

import re

from tltf.models.families.base import STEM, TOP, BackboneSpec, Family, register_family


def efficientnet_matcher(name: str):
    match = re.match(r"^(block(\d+)[a-z])_", name)
    if match:
        return match.group(1), f"block{match.group(2)}"
    if name.startswith("stem_") or name in ("rescaling", "normalization", "rescaling_1"):
        return STEM, STEM
    if name.startswith("top_"):
        return TOP, TOP
    return None


register_family(Family(
    "efficientnet", efficientnet_matcher,
    backbones=tuple(BackboneSpec(f"efficientnet_b{i}", f"EfficientNetB{i}", "none", "efficientnet")
                    for i in range(4)),
    network_prefixes=("efficientnet",),
))
register_family(Family(
    "efficientnet_v2", efficientnet_matcher,
    backbones=(BackboneSpec("efficientnet_v2_b0", "EfficientNetV2B0", "none", "efficientnet_v2"),),
    network_prefixes=("efficientnetv2",),
))
