"""MobileNetV2 in keras.applications: 17 inverted-residual blocks (`expanded_conv_`, `block_<i>_`), grouped
into seven stages by output resolution and width."""

from __future__ import annotations

import re

from tltf.models.families.base import STEM, TOP, BackboneSpec, CachedWeights, Family, register_family

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


# Keras names MobileNetV2's weights after the input size it builds for; the no-top weights do not depend on it.
_CACHED = re.compile(r"^mobilenet_v2_weights_tf_dim_ordering_tf_kernels_(\d\.\d+)_(\d+)_no_top\.h5$")
_SIZES = (96, 128, 160, 192, 224)


def cached_weights(filename: str):
    """Keras' no-top MobileNetV2 weights file at width alpha, under the name of every input size."""
    match = _CACHED.match(filename)
    if not match:
        return None
    alpha = match.group(1)
    names = tuple(f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}_no_top.h5" for size in _SIZES)
    return CachedWeights("mobilenet_v2", names, image_size=96, options={"alpha": float(alpha)})


register_family(Family(
    "mobilenet_v2", mobilenet_v2_matcher,
    backbones=(BackboneSpec("mobilenet_v2", "MobileNetV2", "tf", "mobilenet_v2", has_alpha=True),),
    network_prefixes=("mobilenetv2",),
    cached_weights=cached_weights,
))
