"""KerasHub backbones: a preset (a name, or a local folder) as a pooled feature model like keras.applications'.

`model: {backbone: hub, preset: DIR}` loads `keras_hub.models.Backbone.from_preset(DIR)` and wraps it the way
tltf's other backbones are: the preset's own image scaling first (its `image_converter.json`), so the model takes
raw 0–255 pixels; then the backbone; then pooling to one vector per image (the class token of a transformer, the
spatial mean of a feature map). The wrapper is named after its family (`tltf.models.families`: the family
whose `hub_classes` holds the backbone's class), which is how block maps recognise it.

KerasHub is an optional dependency (`pip install "tltf[hub]"`), imported only here and only when a recipe names
a hub backbone.
"""

from __future__ import annotations

import os

from tltf.errors import TltfError, WeightsError
from tltf.models import families

INSTALL = 'pip install "tltf[hub]" (keras-hub 0.32, safetensors)'


def import_keras_hub():
    """`keras_hub`, or one line saying what to install."""
    try:
        import keras_hub
    except ImportError:
        raise TltfError(f"model.backbone: hub needs KerasHub, which is not installed; {INSTALL}") from None
    return keras_hub


def hub_backbone(input_shape, weights="imagenet", preset=None):
    """The preset's backbone as a pooled feature model, `[N,S,S,3]` raw pixels → `[N,D]`.

    A two-tower preset (a family's `hub_towers`, CLIP's) gives its image embedding: the image tower's class
    token, the preset's projection, L2-normalised — the space its text embeddings live in, so a zero-shot head
    (`tltf.models.zero_shot`) is a plain linear layer on these features.

    Example:
        features = hub_backbone((224, 224, 3), preset="presets/dinov2_small")

    Args:
        input_shape: `(S, S, 3)`.
        weights: None builds the preset's architecture with fresh random weights; anything else loads the
            preset's own (pretrained) weights.
        preset: a KerasHub preset name (downloaded once into KerasHub's cache) or a local preset folder.

    Raises:
        TltfError: KerasHub missing, an unsupported backbone, or an image size the backbone cannot take.
        WeightsError: a preset that cannot be found or downloaded.
    """
    import keras

    from tltf.layers import ClassToken

    if not preset:
        raise TltfError("model.preset: backbone hub needs model.preset, a KerasHub preset name or a local folder")
    loaded = load_preset(preset, load_weights=weights is not None)
    backbone = image_tower(loaded)
    family = _supported_family(backbone, preset, input_shape[0])
    if family.resizable and fixed_size(backbone) not in (None, input_shape[0]):
        loaded = load_preset(preset, load_weights=weights is not None, image_shape=tuple(input_shape))
        backbone = image_tower(loaded)
    scale, offset = preset_scaling(preset, family)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if scale is not None:
        # float32 even under mixed precision, like ImagePreprocessing: bfloat16 cannot hold scaled pixels.
        x = keras.layers.Rescaling(scale, offset if offset is not None else 0.0, name="preset_scaling",
                                   dtype="float32")(x)
    # Some KerasHub backbones declare their input as {"images": ...}; Keras warns when handed a bare tensor.
    x = backbone({key: x for key in backbone.input} if isinstance(backbone.input, dict) else x)
    if len(x.shape) == 4:
        # The last feature map as a layer of this graph (a nested model's own output is not), for Grad-CAM.
        x = keras.layers.Identity(name="feature_map")(x)
    pooled = ClassToken(name="class_token")(x) if len(x.shape) == 3 else keras.layers.GlobalAveragePooling2D(
        name="avg_pool")(x)
    if backbone is not loaded:  # a two-tower preset: its image embedding
        pooled = keras.layers.UnitNormalization(name="embedding_normalization")(loaded.vision_projection(pooled))
    return keras.Model(inputs, pooled, name=family.name)


def _supported_family(backbone, preset, size: int):
    """The family of a preset's image backbone, which must take `size` px images.

    Raises:
        TltfError: a backbone no family wraps, or one whose position embeddings are sized for another size.
    """
    family = hub_family(backbone, "hub_classes")
    if family is None:
        supported = ", ".join(families.hub_class_names())
        raise TltfError(f"model.preset: {preset} is a {type(backbone).__name__}; tltf supports {supported}")
    preset_size = fixed_size(backbone)
    patch = getattr(backbone, "patch_size", None)
    if family.resizable and patch and size % patch:
        lower, higher = size // patch * patch, (size // patch + 1) * patch
        raise TltfError(f"data.image_size: the {type(backbone).__name__} of {preset} takes images of a multiple of "
                        f"its {patch} px patches; set data.image_size: {lower or higher} or {higher}")
    if preset_size is not None and preset_size != size and not family.resizable:
        raise TltfError(f"data.image_size: the {type(backbone).__name__} of {preset} takes {preset_size} px images "
                        f"(its position embeddings are sized for them); set data.image_size: {preset_size}")
    return family


def hub_family(loaded, field: str):
    """The family one of whose `field` (`hub_classes` or `hub_towers`) KerasHub classes `loaded` is, or None."""
    keras_hub = import_keras_hub()
    return next((family for family in families.families() for name in getattr(family, field)
                 if isinstance(loaded, getattr(keras_hub.models, name))), None)


def load_preset(preset, load_weights: bool = True, **options):
    """`keras_hub.models.Backbone.from_preset(preset, **options)` (a CLIP preset: both towers), with one-line
    errors; `options` such as `image_shape` go to KerasHub."""
    keras_hub = import_keras_hub()
    preset = str(preset)
    local = os.path.expanduser(preset)
    if os.path.sep in preset or os.path.exists(local):
        if not os.path.isfile(os.path.join(local, "config.json")):
            raise WeightsError(f"{preset}: model.preset is not a KerasHub preset folder (no config.json there); "
                               "save one with keras_hub.models.Backbone.from_preset(NAME).save_to_preset(DIR)")
        preset = local
    try:
        return keras_hub.models.Backbone.from_preset(preset, load_weights=load_weights, **options)
    except Exception as error:  # KerasHub raises ValueError, ConnectionError, kagglehub's own errors...
        raise _preset_error(preset, error) from None


def image_tower(loaded):
    """The image backbone of a loaded preset: a two-tower preset's vision encoder, else the backbone itself."""
    return loaded.vision_encoder if hub_family(loaded, "hub_towers") is not None else loaded


def fixed_size(backbone):
    """The square input size a backbone is built for, or None when it takes any size."""
    return (getattr(backbone, "image_shape", None) or (None,))[0]


def preset_image_size(preset):
    """The square input size a preset's image tower is built for, or None when it takes any size."""
    return fixed_size(image_tower(load_preset(preset, load_weights=False)))


def scaling_text(preset, image_size: int) -> str:
    """One line on how a preset's pixels are scaled inside the model, and where that scaling comes from."""
    family = hub_family(image_tower(load_preset(preset, load_weights=False)), "hub_classes")
    scale, offset, source = _scaling(preset, family)
    where = {
        "converter": (f"its image converter's scale and offset only (tltf resizes to {image_size} px itself; the "
                      "converter's own resize and crop are not used)"),
        "family": f"the preset has no image converter: the {family.name if family else ''} family's documented "
                  "normalisation",
        "unit": "the preset has no image converter: pixels scaled to [0, 1]",
    }[source]
    return f"preprocessing: pixels × {_rounded(scale)} + {_rounded(offset)}, inside the model; {where}"


def _rounded(value):
    """A scale or offset (a number or one per channel) in 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else "[" + ", ".join(f"{v:.4g}" for v in value) + "]"


def preset_scaling(preset, family=None):
    """`(scale, offset)` of raw 0–255 pixels for a preset: its image converter's (only the scaling: tltf resizes
    itself, and the converter's own resize and crop are not used).

    A KerasHub folder without `image_converter.json` is scaled to [0, 1]. A timm or Hugging Face folder (whose
    `config.json` KerasHub converts) gets the converter KerasHub makes from its config (timm's mean and standard
    deviation); when it makes none, the family's `default_scaling`, else [0, 1].
    """
    scale, offset, _ = _scaling(preset, family)
    return scale, offset


def _scaling(preset, family):
    """`(scale, offset, source)`, source `converter`, `family` (its `default_scaling`) or `unit` ([0, 1])."""
    keras_hub = import_keras_hub()
    local = os.path.expanduser(str(preset))
    folder = os.path.isdir(local)
    if folder and not os.path.isfile(os.path.join(local, "image_converter.json")) and _keras_format(local):
        return 1.0 / 255.0, 0.0, "unit"
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(local if folder else str(preset))
    except Exception as error:
        raise _preset_error(str(preset), error) from None
    if converter is not None:
        return _plain(converter.scale), _plain(converter.offset), "converter"
    if family is not None and family.default_scaling is not None:
        return *family.default_scaling, "family"
    return 1.0 / 255.0, 0.0, "unit"


def _keras_format(folder: str) -> bool:
    """Whether a preset folder was saved by KerasHub itself (its config names a Keras class), not by timm or
    Hugging Face."""
    import json

    try:
        with open(os.path.join(folder, "config.json")) as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return True
    return isinstance(config, dict) and ("class_name" in config or "registered_name" in config)


def _plain(value):
    """A converter's scale or offset as a float, a list of floats or None (it may hold a tensor)."""
    if value is None:
        return None
    import numpy as np

    array = np.asarray(value, dtype="float64").reshape(-1)
    return float(array[0]) if array.size == 1 else [float(v) for v in array]


def _preset_error(preset: str, error: Exception) -> Exception:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    network = ("Connection" in type(error).__name__ or "resolve" in message.lower()
               or "Max retries" in message or "HTTP" in message)
    if network:
        return WeightsError(
            f"model.preset: {preset} is not in KerasHub's cache and could not be downloaded ({type(error).__name__}); "
            f"on a machine with internet run keras_hub.models.Backbone.from_preset({preset!r}).save_to_preset(DIR) "
            "(and keras_hub.layers.ImageConverter.from_preset(...).save_to_preset(DIR)), copy DIR here and set "
            "model.preset: DIR")
    if "safetensors" in message:  # a timm or Hugging Face folder: KerasHub converts it with safetensors
        return WeightsError(f"model.preset: {preset} holds safetensors weights and the safetensors package is not "
                            f"installed; {INSTALL}")
    return WeightsError(f"model.preset: {preset} cannot be loaded by KerasHub: {message[:200]}")
