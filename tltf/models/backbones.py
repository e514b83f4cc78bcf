"""The backbone registry: a name → how to build it and how to feed it.

Each entry says which `keras.applications` constructor builds the backbone,
which input preprocessing its ImageNet weights expect (applied inside the
model, so the model takes raw 0–255 pixels), its family (for block maps) and
the smallest square input it accepts.

Users can add their own with `register_backbone`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable

from tltf.errors import TltfError, WeightsError


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    Args:
        name: the recipe name, lowercase snake_case (`resnet50`).
        constructor: the `keras.applications` attribute name (`"ResNet50"`),
            or a callable `(input_shape, weights, **kwargs) -> keras.Model`
            returning a pooled feature model.
        preprocessing: the mode of `tltf.layers.ImagePreprocessing`:
            `"caffe"`, `"tf"`, `"torch"` or `"none"` (the application
            normalises its own input).
        family: groups backbones that share a block layout.
        min_size: the smallest square input in pixels.
        has_alpha: whether `model.alpha` (MobileNet width) applies.
        constructor_kwargs: fixed keyword arguments for the constructor.
        needs_preset: built from `model.preset` (KerasHub), which the
            constructor takes as `preset=`.
    """

    name: str
    constructor: str | Callable
    preprocessing: str
    family: str
    min_size: int = 32
    has_alpha: bool = False
    constructor_kwargs: tuple = ()
    needs_preset: bool = False


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Adds `spec` to the registry, replacing any entry of the same name."""
    _REGISTRY[spec.name] = spec
    return spec


def get_backbone_spec(name: str) -> BackboneSpec:
    return _REGISTRY[name]


def backbone_names() -> list[str]:
    return sorted(_REGISTRY)


# MobileNetV3 and EfficientNet(V2) and ConvNeXt ship their own input
# normalisation layers in keras.applications, so no extra preprocessing.
for _spec in [
    BackboneSpec("resnet50", "ResNet50", "caffe", "resnet"),
    BackboneSpec("resnet101", "ResNet101", "caffe", "resnet"),
    BackboneSpec("resnet50_v2", "ResNet50V2", "tf", "resnet_v2"),
    BackboneSpec("mobilenet_v2", "MobileNetV2", "tf", "mobilenet_v2", has_alpha=True),
    BackboneSpec("mobilenet_v3_small", "MobileNetV3Small", "none", "mobilenet_v3", has_alpha=True),
    BackboneSpec("mobilenet_v3_large", "MobileNetV3Large", "none", "mobilenet_v3", has_alpha=True),
    BackboneSpec("efficientnet_b0", "EfficientNetB0", "none", "efficientnet"),
    BackboneSpec("efficientnet_b1", "EfficientNetB1", "none", "efficientnet"),
    BackboneSpec("efficientnet_b2", "EfficientNetB2", "none", "efficientnet"),
    BackboneSpec("efficientnet_b3", "EfficientNetB3", "none", "efficientnet"),
    BackboneSpec("efficientnet_v2_b0", "EfficientNetV2B0", "none", "efficientnet_v2"),
    BackboneSpec("convnext_tiny", "ConvNeXtTiny", "none", "convnext"),
    BackboneSpec("densenet121", "DenseNet121", "torch", "densenet"),
]:
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
    try:
        from keras.src.backend.config import keras_home as _keras_home  # Keras reads the variable once, at import

        return _keras_home()
    except ImportError:
        return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
