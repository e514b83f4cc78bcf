"""ConvNeXt in keras.applications: `..._stage_<s>_block_<b>_` layers; each stage's downsampling layer opens it.
The application normalises its own input."""

from __future__ import annotations

import re

from tltf.models.families.base import STEM, TOP, BackboneSpec, Family, register_family


def convnext_matcher(name: str):
    match = re.search(r"_stage_(\d+)_block_(\d+)_", name)
    if match:
        return f"stage_{match.group(1)}_block_{match.group(2)}", f"stage_{match.group(1)}"
    match = re.search(r"_downsampling_block_(\d+)$", name)
    if match:
        stage = int(match.group(1)) + 1
        return f"stage_{stage}_downsampling", f"stage_{stage}"
    if name.endswith("_stem") or name.endswith("_prestem_normalization"):
        return STEM, STEM
    if name in ("layer_normalization", "head_layernorm"):
        return TOP, TOP
    return None


register_family(Family(
    "convnext", convnext_matcher,
    backbones=(BackboneSpec("convnext_tiny", "ConvNeXtTiny", "none", "convnext"),),
    network_prefixes=("convnext",),
))
