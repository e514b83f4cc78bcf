"""ResNet (v1 and v2) in keras.applications: `conv<S>_block<B>_...` layers, a stage per `conv<S>`."""

from __future__ import annotations

import re

from tltf.models.families.base import STEM, TOP, BackboneSpec, Family, register_family


def resnet_matcher(stage_prefix: str = "conv", anchored: bool = True, top_names=(), top_part: str = "",
                   transitions: bool = False):
    """The group matcher of a ResNet-like layout: `<stage_prefix><S>_block<B>_` layers are block
    `<stage_prefix><S>_block<B>` of stage `<stage_prefix><S>`; `conv1_` and `pool1_` layers are the stem.

    Args:
        stage_prefix: `conv` (keras.applications) or `stack` (KerasHub).
        anchored: the names start with the pattern; else it may follow a model-name prefix (`resnet_backbone_`).
        top_names: layer names after the last block.
        top_part: a name part that marks a top layer wherever it stands (`post_`).
        transitions: `pool<S>_` layers are units of their own (DenseNet's transitions between dense blocks).
    """
    start = "^" if anchored else "(?:^|_)"
    block = re.compile(rf"{start}({stage_prefix}(\d+))_block(\d+)_")
    stem = re.compile(rf"{start}(conv1|pool1)_")
    transition = re.compile(rf"{start}(pool(\d+))_") if transitions else None
    top = re.compile(rf"{start}{top_part}") if top_part else None

    def matcher(name: str):
        match = block.search(name)
        if match:
            return f"{match.group(1)}_block{match.group(3)}", match.group(1)
        if stem.search(name):
            return STEM, STEM
        match = transition.search(name) if transition is not None else None
        if match:
            return match.group(1), match.group(1)
        if name in top_names or (top is not None and top.search(name)):
            return TOP, TOP
        return None

    return matcher


# tltf's default backbone: ImageNet ResNet50, what most transfer-learning papers start from.
DEFAULT_BACKBONE = "resnet50"

# keras.applications' ResNets and DenseNets share this naming.
applications_matcher = resnet_matcher(top_names=("post_bn", "post_relu", "bn", "relu", "avg_pool"), transitions=True)

register_family(Family(
    "resnet", applications_matcher,
    backbones=(BackboneSpec("resnet50", "ResNet50", "caffe", "resnet"),
               BackboneSpec("resnet101", "ResNet101", "caffe", "resnet")),
    network_prefixes=("resnet",),
))
register_family(Family(
    "resnet_v2", applications_matcher,
    backbones=(BackboneSpec("resnet50_v2", "ResNet50V2", "tf", "resnet_v2"),),
    network_prefixes=("resnet50v2", "resnet101v2", "resnet152v2"),
))
