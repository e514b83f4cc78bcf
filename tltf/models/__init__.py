"""Models: backbone registry, anatomy (where the backbone and head are), heads and build_model."""

from tltf.models.anatomy import backbone_of, family_of, feature_extractor, head_of
from tltf.models.backbones import BackboneSpec, backbone_names, get_backbone_spec, register_backbone
from tltf.models.build import build_model
from tltf.models.calibration import fold_calibration, output_layer_of

__all__ = [
    "BackboneSpec", "backbone_names", "backbone_of", "build_model", "family_of", "feature_extractor",
    "fold_calibration", "get_backbone_spec", "head_of", "output_layer_of", "register_backbone",
]
