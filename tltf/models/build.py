"""build_model: raw pixels → backbone preprocessing → backbone → head."""

from __future__ import annotations

from tltf.models.anatomy import BACKBONE_LAYER, family_from_name, leaf_layers
from tltf.models.backbones import create_backbone, get_backbone_spec
from tltf.models.families import DEFAULT_BACKBONE
from tltf.models.heads import build_head


def default_bn(weights) -> str:
    """BatchNorm frozen with pretrained weights, training without them.

    Without pretrained statistics, frozen BN would normalise with the initial
    moving averages forever and the model would predict a constant.
    """
    return "frozen" if weights else "train"


def default_bn_momentum(weights, bn: str):
    """0.9 when BatchNorm trains from scratch, else None (the backbone's own).

    keras.applications use momentum 0.99-0.999, tuned for ImageNet's millions
    of steps; after a few hundred steps the moving statistics are still mostly
    their initial values and a model trained from scratch predicts a constant.
    """
    return 0.9 if bn == "train" and not weights else None


def default_bn_calibration(weights, bn: str) -> int:
    """16 batches when BatchNorm trains from scratch, else 0 (see `tltf.callbacks.BatchNormCalibration`).

    Momentum alone is not enough there: a random network's activations shrink by orders of magnitude
    from layer to layer under the initial statistics, and the moving averages of the last layers are still
    far off after a hundred steps, so validation sees a constant prediction.
    """
    return 16 if bn == "train" and not weights else 0


def build_model(backbone: str = DEFAULT_BACKBONE, *, num_classes: int = 2, image_size: int = 224, weights="imagenet",
                alpha=None, head: str = "linear", hidden_units=(256,), dropout: float = 0.2, bn: str | None = None,
                bn_momentum: float | None = None, preset: str | None = None):
    """A transfer-learning classifier as a plain functional `keras.Model`.

    The model takes raw 0–255 RGB pixels `[N,S,S,3]`. Inside it: the
    backbone's own ImageNet preprocessing, the backbone (pooled, wrapped in
    `BatchNormPolicy` under the layer name `"backbone"`), and a new head
    (layer name `"head"`). Binary tasks output one sigmoid probability
    `[N,1]`; multiclass tasks a softmax `[N,C]`.

    Example:
        model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights=None)
        tltf.backbone_of(model).trainable = False   # feature extraction
        model.compile("adamw", "binary_crossentropy")

    Args:
        backbone: a registered backbone name (`tltf.models.backbone_names()`).
        num_classes: 2 for binary, more for multiclass.
        image_size: square input size in pixels.
        weights: `"imagenet"`, None, or a path to a weights file.
        alpha: MobileNet width multiplier.
        head: `"linear"` or `"mlp"`.
        hidden_units: the mlp head's hidden sizes.
        dropout: the head's dropout rate.
        bn: `"frozen"` (BatchNorm always in inference mode) or `"train"`; default `default_bn(weights)`.
        bn_momentum: if given, the moving-average momentum of every backbone BatchNorm (lower settles faster).
        preset: with `backbone="hub"`, a KerasHub preset name or local folder (`tltf.models.hub`).
    """
    import keras

    from tltf.layers import BatchNormPolicy, ImagePreprocessing
    from tltf.task import Task

    spec = get_backbone_spec(backbone)
    bn = bn or default_bn(weights)
    net = create_backbone(backbone, image_size, weights=weights, alpha=alpha, preset=preset)
    family = family_from_name(net.name) if spec.needs_preset else spec.family
    if bn_momentum is not None:
        _set_bn_momentum(net, bn_momentum)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    # float32 even under mixed precision: bfloat16 cannot hold normalised pixels to 8 bits.
    x = ImagePreprocessing(spec.preprocessing, name="preprocessing", dtype="float32")(inputs)
    features = BatchNormPolicy(net, mode=bn, family=family, name=BACKBONE_LAYER)(x)
    outputs = build_head(features.shape[-1], Task.with_classes(num_classes), head, hidden_units, dropout)(features)
    return keras.Model(inputs, outputs, name=f"tltf_{family if spec.needs_preset else backbone}")


def _set_bn_momentum(network, momentum: float) -> None:
    import keras

    for layer in leaf_layers(network):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
