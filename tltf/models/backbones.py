"""The backbone registry: a name → how to build it and how to feed it.

Each entry (`BackboneSpec`) says which `keras.applications` constructor
builds the backbone, which input preprocessing its ImageNet weights expect
(applied inside the model, so the model takes raw 0–255 pixels), its family
(for block maps) and the smallest square input it accepts. The entries come
from the backbone families (`tltf.models.families`), each of which lists its
own; users can add theirs with `register_backbone`.
"""

from __future__ import annotations

import os
import re

from tltf.errors import TltfError, WeightsError
from tltf.models import families
from tltf.models.families.base import BackboneSpec

_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Adds `spec` to the registry, replacing any entry of the same name."""
    _REGISTRY[spec.name] = spec
    return spec


def get_backbone_spec(name: str) -> BackboneSpec:
    return _REGISTRY[name]


def backbone_names() -> list[str]:
    return sorted(_REGISTRY)


for _family in families.families():
    for _spec in _family.backbones:
        register_backbone(_spec)


def _hub_backbone(input_shape, weights=None, preset=None):
    from tltf.models.hub import hub_backbone  # KerasHub is imported only when a recipe names it

    return hub_backbone(input_shape, weights, preset)


# Any KerasHub backbone tltf supports (`tltf.models.hub`); its family is read from the preset. The preset's own
# scaling is inside the feature model, so no extra preprocessing.
register_backbone(BackboneSpec("hub", _hub_backbone, "none", "hub", needs_preset=True))


def create_backbone(name: str, image_size: int, weights=None, alpha=None, preset=None):
    """Builds the named backbone as a pooled feature model (`[N,S,S,3] → [N,D]`).

    Args:
        name: a registered backbone name.
        image_size: square input size.
        weights: `"imagenet"` (the Keras cache, `$KERAS_HOME/models`,
            downloading if missing), None, or a path to a weights file.
        alpha: MobileNet width multiplier.
        preset: a KerasHub preset name or folder, for backbones that need one (`hub`).

    Raises:
        WeightsError: weights that cannot be found, downloaded or loaded,
            as one line naming the file and what to do.
    """
    import keras

    spec = get_backbone_spec(name)
    kwargs = dict(spec.constructor_kwargs)
    if alpha is not None:
        kwargs["alpha"] = alpha
    if spec.needs_preset:
        kwargs["preset"] = preset
    constructor = spec.constructor
    if isinstance(constructor, str):
        constructor = getattr(keras.applications, constructor)
        kwargs.update(include_top=False, pooling="avg")
    if weights not in (None, "imagenet"):
        path = os.path.expanduser(str(weights))
        if not os.path.isfile(path):
            raise WeightsError(f"{path}: model.weights file not found; give an existing .h5/.weights.h5 file, "
                               "imagenet or none")
        weights = path
    try:
        return constructor(input_shape=(image_size, image_size, 3), weights=weights, **kwargs)
    except TltfError:
        raise
    except Exception as error:
        raise _weights_error(spec, weights, error) from None


def _weights_error(spec: BackboneSpec, weights, error: Exception) -> Exception:
    message = str(error)
    if weights == "imagenet":
        url = re.search(r"(\w+://\S+?\.h5)", message)
        if url or "URL fetch failure" in message or isinstance(error, OSError):
            filename = url.group(1).rsplit("/", 1)[-1] if url else f"the {spec.name} ImageNet weights file"
            cache = os.path.join(keras_home(), "models")
            return WeightsError(
                f"model.weights: imagenet weights for {spec.name} are not in the Keras cache and could not be "
                f"downloaded; put {filename} in {cache} (see README: offline use), "
                f"or set model.weights to a local weights file"
            )
    if weights not in (None, "imagenet"):
        first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
        return WeightsError(
            f"{weights}: model.weights does not fit {spec.name} ({first[:200]}); "
            f"use weights saved from the same backbone, include_top=False"
        )
    if isinstance(error, ValueError):
        # keras.applications validates alpha, input sizes and weights this way.
        first = message.strip().splitlines()[0]
        return TltfError(f"model: {spec.name} cannot be built as configured: {first}")
    return error


def keras_home() -> str:
    """Where Keras caches downloads: `$KERAS_HOME` as it was when Keras was imported, else `~/.keras`."""
    from tltf._keras_internals import keras_cache_home

    return keras_cache_home()
