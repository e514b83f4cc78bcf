"""Where the parts of a classifier are: its backbone, its head, their leaf layers and variables.

The lowest layer of tltf's model code: everything that asks "which layer is
the backbone?" asks here, so block maps, callbacks, optimizers and
adaptation agree. A tltf model has a `BatchNormPolicy` layer named
`"backbone"` (which records the backbone family) and a head named `"head"`.
A user's own model works too when it nests a `keras.applications` backbone
(`backbone_of` finds it) and ends in a Dense layer.
"""

from __future__ import annotations

from typing import Optional

from tltf.models import families

BACKBONE_LAYER = "backbone"
HEAD_LAYER = "head"


def backbone_of(model):
    """The backbone layer: tltf's `BatchNormPolicy` named "backbone", else the one nested model in `model`.

    Raises:
        ValueError: naming what was looked for, when there is no single nested backbone.
    """
    names = [layer.name for layer in model.layers]
    if BACKBONE_LAYER in names:
        return model.get_layer(BACKBONE_LAYER)
    nested = [layer for layer in model.layers if hasattr(layer, "layers") and len(layer.layers) > 2
              and layer.name != HEAD_LAYER]
    if len(nested) != 1:
        raise ValueError(f"model {model.name!r} has no layer named 'backbone' and {len(nested)} nested models; "
                         "tltf needs the backbone as one nested model (e.g. a keras.applications model) "
                         "or passed as backbone=")
    return nested[0]


def backbone_network(model):
    """The backbone's own `keras.Model` (inside tltf's `BatchNormPolicy` wrapper, if any)."""
    backbone = backbone_of(model)
    return getattr(backbone, "layer", backbone)


def head_of(model):
    """The head: tltf's layer named "head", else the model's last layer."""
    names = [layer.name for layer in model.layers]
    return model.get_layer(HEAD_LAYER) if HEAD_LAYER in names else model.layers[-1]


def family_of(model, backbone=None) -> Optional[str]:
    """The backbone family (`tltf.models.families`) the block maps need, or None when unknown.

    tltf records it on its backbone wrapper; for a user's model it is read from
    the nested `keras.applications` model's name (`mobilenetv2_1.00_224` …).
    """
    backbone = backbone if backbone is not None else backbone_of(model)
    recorded = getattr(backbone, "family", None)
    if recorded:
        return recorded
    return family_from_name(getattr(backbone, "layer", backbone).name)


def family_from_name(network_name: str) -> Optional[str]:
    """The family a backbone network's name says (`mobilenetv2_1.00_224`, tltf's `hub_vit`), or None."""
    family = families.for_network_name(network_name)
    return family.name if family is not None else None


def feature_extractor(model):
    """A `keras.Model` from raw pixels to the pooled backbone features."""
    import keras

    return keras.Model(model.input, backbone_of(model).output, name="feature_extractor")


def variable_key(variable) -> str:
    """A variable's path, stable across a `.keras` round trip: without the leading `head/` of tltf's heads.

    Keras gives a Sequential head's variables different paths in a built model
    (`head/logit/kernel`) and in the same model loaded from `.keras`
    (`logit/kernel`). Everything else keeps its whole path: layers of a
    keras.applications backbone are `layer/variable` already, and a KerasHub
    transformer repeats `dense_1/kernel` in every block
    (`encoder_block_0/dense_1/kernel`, `encoder_block_1/dense_1/kernel`).
    """
    parts = variable.path.split("/")
    if len(parts) > 2 and parts[0] in _SEQUENTIAL_HEADS:
        parts = parts[1:]
    return "/".join(parts)


# The Sequential heads tltf builds: the classifier's and DANN's domain classifier.
_SEQUENTIAL_HEADS = (HEAD_LAYER, "domain_head")


def parameters(layer) -> list:
    """The variables that train when the layer is trainable: not BatchNorm statistics or counters.

    Keras keeps them in this list whatever the layer's current `trainable` flag.
    """
    from tltf._keras_internals import trainable_variables_of

    return trainable_variables_of(layer)


def leaf_layers(layer):
    """Every layer under `layer` that holds variables itself, or has no sublayers (itself if it has none),
    through nested models, `BatchNormPolicy` wrappers and layers made of sublayers (a transformer block: its
    attention projections, norms and dense layers). Each variable belongs to exactly one of them."""
    from tltf._keras_internals import own_variables, sublayers
    from tltf.layers import BatchNormPolicy

    children = [layer.layer] if isinstance(layer, BatchNormPolicy) else sublayers(layer)
    if not children or own_variables(layer):
        yield layer
    for child in children:
        yield from leaf_layers(child)


def members_of(model) -> list:
    """The classifiers a model averages (its nested models, when its output is a `ProbabilityAverage`): an
    ensemble's members in order, or the one classifier behind test-time augmentation; [] for any other model."""
    import keras

    from tltf.layers import ProbabilityAverage

    if not model.layers or not isinstance(model.layers[-1], ProbabilityAverage):
        return []
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]
