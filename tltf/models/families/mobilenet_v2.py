"""MobileNetV2 in keras.applications: 17 inverted-residual blocks (`expanded_conv_`, `block_<i>_`), grouped
into seven stages by output resolution and width."""

from __future__ import annotations

import re

from tltf.models.families.base import STEM, TOP, BackboneSpec, Family, register_family

# The stage of each of the 17 blocks.
_STAGES = [1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7]


def mobilenet_v2_matcher(name: str):
    if name.startswith("expanded_conv_"):
        return "block_0", "stage_1"
    match = re.match(r"^block_(\d+)_", name)
    if match:
        index = int(match.group(1))
        return f"block_{index}", f"stage_{_STAGES[index]}"
    if name in ("Conv1", "bn_Conv1", "Conv1_relu", "Conv1_pad"):
        return STEM, STEM
    if name in ("Conv_1", "Conv_1_bn", "out_relu", "global_average_pooling2d"):
        return TOP, TOP
    return None


register_family(Family(
    "mobilenet_v2", mobilenet_v2_matcher,
    backbones=(BackboneSpec("mobilenet_v2", "MobileNetV2", "tf", "mobilenet_v2", has_alpha=True),),
    network_prefixes=("mobilenetv2",),
))
