"""Backbone families, one module each, and the registry they register into (`tltf.models.families.base`).

Example:
    from tltf.models import families
    families.get("mobilenet_v2").group_matcher("block_3_expand")   # ("block_3", "stage_3")
    families.for_network_name("resnet50v2").name                    # "resnet_v2"
"""

from tltf.models.families import (  # noqa: F401  each module registers its family
    convnext,
    densenet,
    efficientnet,
    hub_clip_vision,
    hub_dinov2,
    hub_efficientnet,
    hub_resnet,
    hub_vit,
    mobilenet_v2,
    mobilenet_v3,
    resnet,
)
from tltf.models.families.base import (
    NUMBERED,
    STEM,
    TOP,
    BackboneSpec,
    Family,
    families,
    for_hub_class,
    for_network_name,
    get,
    hub_class_names,
    names,
    register_family,
)

# The backbone a recipe or `build_model` gets when it names none.
DEFAULT_BACKBONE = resnet.DEFAULT_BACKBONE

__all__ = [
    "DEFAULT_BACKBONE", "NUMBERED", "STEM", "TOP", "BackboneSpec", "Family", "families", "for_hub_class",
    "for_network_name", "get", "hub_class_names", "names", "register_family",
]
