"""Models: backbone registry, heads and build_model."""

from tltf.models.backbones import BackboneSpec, backbone_names, get_backbone_spec, register_backbone
from tltf.models.build import backbone_of, build_model, build_model_from_recipe, feature_extractor, head_of

__all__ = [
    "BackboneSpec", "backbone_names", "backbone_of", "build_model", "build_model_from_recipe",
    "feature_extractor", "get_backbone_spec", "head_of", "register_backbone",
]
