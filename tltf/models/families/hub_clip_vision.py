"""CLIP's image tower in KerasHub (`CLIPVisionEncoder`, or the vision encoder of a whole `CLIPBackbone`):
`encoder_block_<i>` blocks; CLIP's projection is part of the top. A whole CLIP preset also has the text tower
and tokenizer a zero-shot head is made from."""

from __future__ import annotations

from tltf.models.families.base import Family, register_family
from tltf.models.families.transformer import transformer_matcher


def clip_text_embeddings(clip, preset, prompts_per_class):
    """One `[P, D]` array of CLIP text embeddings per class (its P prompts), and CLIP's temperature as a
    multiplier (`exp` of its learned `logit_scale`).

    Raises:
        TltfError: the preset has no tokenizer KerasHub can load.
    """
    import keras
    import keras_hub
    import numpy as np

    from tltf.errors import TltfError

    try:
        preprocessor = keras_hub.models.CLIPPreprocessor.from_preset(str(preset))
    except Exception as error:
        raise TltfError(f"model.zero_shot: {preset} has no CLIP tokenizer KerasHub can load "
                        f"({str(error).strip().splitlines()[0][:160]}); save the preset's CLIPPreprocessor with "
                        "save_to_preset too") from None
    embeddings = []
    for prompts in prompts_per_class:
        token_ids = preprocessor({"images": None, "prompts": prompts})["token_ids"]
        embeddings.append(keras.ops.convert_to_numpy(clip.get_text_embeddings(token_ids)))
    return embeddings, float(np.exp(keras.ops.convert_to_numpy(clip.clip_head.logit_scale)))


register_family(Family(
    "hub_clip_vision",
    transformer_matcher("encoder_block", ("embedding", "pre_layer_norm"), ("layer_norm", "vision_projection")),
    network_prefixes=("hub_clip_vision",),
    hub_classes=("CLIPVisionEncoder",),
    hub_towers=("CLIPBackbone",),
    nested=True,
    text_embeddings=clip_text_embeddings,
))
