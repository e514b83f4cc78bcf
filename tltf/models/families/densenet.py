"""DenseNet in keras.applications: ResNet's `conv<S>_block<B>_` naming, with `pool<S>_` transitions between
dense blocks as units of their own."""

from __future__ import annotations

from tltf.models.families.base import BackboneSpec, Family, register_family
from tltf.models.families.resnet import applications_matcher

register_family(Family(
    "densenet", applications_matcher,
    backbones=(BackboneSpec("densenet121", "DenseNet121", "torch", "densenet"),),
    network_prefixes=("densenet",),
))
