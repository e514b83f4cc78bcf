"""build_model: raw pixels → backbone preprocessing → backbone → head."""

from __future__ import annotations

from tltf.models.backbones import create_backbone, get_backbone_spec
from tltf.models.blocks import leaf_layers
from tltf.models.heads import build_head

BACKBONE_LAYER = "backbone"
HEAD_LAYER = "head"


def build_model(
    backbone: str = "resnet50",
    *,
    num_classes: int = 2,
    image_size: int = 224,
    weights="imagenet",
    alpha=None,
    head: str = "linear",
    hidden_units=(256,),
    dropout: float = 0.2,
    bn: str | None = None,
    bn_momentum: float | None = None,
):
    """A transfer-learning classifier as a plain functional `keras.Model`.

    The model takes raw 0–255 RGB pixels `[N,S,S,3]`. Inside it: the
    backbone's own ImageNet preprocessing, the backbone (pooled, wrapped in
    `BatchNormPolicy` under the layer name `"backbone"`), and a new head
    (layer name `"head"`). Binary tasks output one sigmoid probability
    `[N,1]`; multiclass tasks a softmax `[N,C]`.

    Example:
        model = tltf.build_model("mobilenet_v2", alpha=0.35, image_size=96, weights=None)
        model.get_layer("backbone").trainable = False   # feature extraction
        model.compile("adamw", "binary_crossentropy")
        model.fit(images, labels)

    Args:
        backbone: a registered backbone name (`tltf.models.backbone_names()`).
        num_classes: 2 for binary, more for multiclass.
        image_size: square input size in pixels.
        weights: `"imagenet"`, None, or a path to a weights file.
        alpha: MobileNet width multiplier.
        head: `"linear"` or `"mlp"`.
        hidden_units: the mlp head's hidden sizes.
        dropout: the head's dropout rate.
        bn: `"frozen"` (BatchNorm always in inference mode) or `"train"`.
            Default: frozen with pretrained weights, train without.
        bn_momentum: if given, the moving-average momentum of every
            BatchNormalization in the backbone (lower settles faster).
    """
    import keras

    from tltf.layers import BatchNormPolicy, ImagePreprocessing

    spec = get_backbone_spec(backbone)
    if bn is None:
        bn = "frozen" if weights else "train"
    net = create_backbone(backbone, image_size, weights=weights, alpha=alpha)
    if bn_momentum is not None:
        for layer in leaf_layers(net):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    inputs = keras.Input((image_size, image_size, 3), name="image")
    # float32 even under mixed precision: bfloat16 cannot hold normalised pixels to 8 bits.
    x = ImagePreprocessing(spec.preprocessing, name="preprocessing", dtype="float32")(inputs)
    features = BatchNormPolicy(net, mode=bn, name=BACKBONE_LAYER)(x)
    outputs = build_head(features.shape[-1], num_classes, head, hidden_units, dropout)(features)
    return keras.Model(inputs, outputs, name=f"tltf_{backbone}")


def build_model_from_recipe(recipe, num_classes: int):
    """`build_model` with the recipe's `model` section and `data.image_size`."""
    m = recipe.model
    return build_model(
        m.backbone, num_classes=num_classes, image_size=recipe.data.image_size, weights=m.weights,
        alpha=m.alpha, head=m.head, hidden_units=tuple(m.hidden_units), dropout=m.dropout, bn=m.bn,
        bn_momentum=m.bn_momentum,
    )


def backbone_of(model):
    """The `BatchNormPolicy` layer wrapping the backbone; set `.trainable` on it."""
    return model.get_layer(BACKBONE_LAYER)


def head_of(model):
    """The head as its own `keras.Model` (features → probabilities)."""
    return model.get_layer(HEAD_LAYER)


def feature_extractor(model):
    """A `keras.Model` from raw pixels to the pooled backbone features."""
    import keras

    return keras.Model(model.input, backbone_of(model).output, name="feature_extractor")
