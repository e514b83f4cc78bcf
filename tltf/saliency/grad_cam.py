"""Grad-CAM: where in the image the evidence for a class is (Selvaraju et al., 2017).

A convolutional feature map `A` (`[h, w, K]`) of the backbone (by default the
last one at least 6 cells on a side: `feature_map_layer`) is weighted
channel by channel by the mean gradient of the class's logit with respect to
it; the positive part of the weighted sum, upsampled to the image, is the
heat map. The logit is taken before the sigmoid or softmax, as in the paper,
so a saturated probability does not flatten the gradients.
"""

from __future__ import annotations

import numpy as np

from tltf.models.anatomy import backbone_network, backbone_of
from tltf.models.calibration import output_layer_of

# The chain's probabilities must be the model's: else the heat map explains some other computation.
_AGREEMENT = 1e-3
# The default map's least side, in cells (`feature_map_layer`).
MIN_SIDE = 6


class GradCam:
    """Grad-CAM heat maps for a classifier made of a chain of layers with a convolutional backbone in it.

    Works on tltf's models and on a user's model built the same way (pixels → preprocessing → a nested
    `keras.applications`-style backbone → head ending in `Dense(sigmoid|softmax)`). It checks, on every call,
    that running the chain reproduces the model's own probabilities.

    Example:
        cam = GradCam(keras.models.load_model("run/model.keras"))
        maps, probabilities = cam(images)               # maps: [N, S, S] in [0, 1], for each predicted class
        maps, _ = cam(images, target_class=1)           # the evidence for class 1, whatever was predicted

    Args:
        model: the classifier (for a model with test-time augmentation, the classifier behind it: the map
            explains the image as given, not its mirrored views).
        layer_name: the backbone layer whose 4-D output is explained (default `feature_map_layer`: the last map at
            least 6 cells on a side, e.g. 6×6 in MobileNetV2 at 96 px, the last 7×7 in ResNet50 at 224 px).
    """

    def __init__(self, model, layer_name: str | None = None):
        import keras

        from tltf.models.anatomy import members_of

        averaged = members_of(model)
        if len(averaged) > 1:
            raise ValueError(f"model {model.name!r} averages {len(averaged)} classifiers (an ensemble) and has no "
                             "one feature map; make the maps on a member")
        model = averaged[0] if averaged else model  # test-time augmentation's one classifier
        self.model = model
        self.backbone = backbone_of(model)
        network = backbone_network(model)
        self.layer = network.get_layer(layer_name) if layer_name else feature_map_layer(network)
        if len(self.layer.output.shape) != 4:
            raise ValueError(f"{self.layer.name!r} outputs shape {self.layer.output.shape}, not a feature map "
                             "[N, h, w, channels]")
        self.network = keras.Model(network.inputs, [self.layer.output, network.output], name="grad_cam_backbone")
        self.output_layer = output_layer_of(model)
        self.chain = list(_chain(model, self.backbone))
        self.binary = int(model.output.shape[-1]) == 1

    def __call__(self, images, target_class=None, threshold: float = 0.5, batch_size: int = 32):
        """`(maps [N, S, S] float32 in [0, 1], probabilities)` for `images` (uint8 or float pixels `[N, S, S, 3]`).

        Args:
            images: what the model takes.
            target_class: a class id, or one per image; default the class the model decides.
            threshold: binary only: the model decides the positive class when p ≥ threshold.
            batch_size: images per gradient pass.
        """
        maps, probabilities = [], []
        images = np.asarray(images)
        targets = None if target_class is None else np.broadcast_to(np.asarray(target_class), (len(images),))
        for start in range(0, len(images), batch_size):
            batch_targets = None if targets is None else targets[start:start + batch_size]
            batch_maps, batch_probabilities = self._batch(images[start:start + batch_size], batch_targets, threshold)
            maps.append(batch_maps)
            probabilities.append(batch_probabilities)
        return np.concatenate(maps), np.concatenate(probabilities)

    def _batch(self, images, targets, threshold):
        import tensorflow as tf

        pixels = tf.convert_to_tensor(images, tf.float32)
        targets = None if targets is None else tf.constant(np.asarray(targets, np.int64))
        maps, probabilities = self.maps(pixels, targets, threshold)
        self._check_agreement(pixels, probabilities)
        return maps.numpy(), probabilities.numpy()

    def maps(self, pixels, targets=None, threshold=0.5):
        """TensorFlow ops only (an exported SavedModel serves it): `(maps [N, S, S] in [0, 1], probabilities
        [N] binary or [N, C])` for float32 `pixels`; `targets` int64 `[N]`, or None for the decided class."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            # Watching the pixels records every op after them, so the gradient reaches the feature map even
            # when no variable on the way trains (a frozen backbone, a LoRA model).
            tape.watch(pixels)
            feature_map, logits = self._forward(pixels)
            probabilities = tf.sigmoid(logits[:, 0]) if self.binary else tf.nn.softmax(logits)
            if targets is None:
                targets = self.decisions(probabilities, threshold)
            if self.binary:  # one logit: the evidence for class 0 is the evidence against class 1
                score = tf.where(tf.equal(targets, 1), logits[:, 0], -logits[:, 0])
            else:
                score = tf.gather(logits, targets, axis=1, batch_dims=1)
        gradients = tape.gradient(score, feature_map)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))[..., None]
        size = pixels.shape[1:3] if pixels.shape[1] is not None else tf.shape(pixels)[1:3]
        cam = tf.image.resize(cam, size, method="bilinear")[..., 0]
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cam, peak), probabilities

    def decisions(self, probabilities, threshold=0.5):
        """The decided class ids (int64): binary, p ≥ threshold; multiclass, the argmax."""
        import tensorflow as tf

        if self.binary:
            return tf.cast(probabilities >= threshold, tf.int64)
        return tf.argmax(probabilities, axis=1)

    def _forward(self, pixels):
        """The model's layers in order, the backbone replaced by its two-output twin, the last Dense without its
        activation: `(feature map, logits)`, all in float32."""
        import keras
        import tensorflow as tf

        x, feature_map = pixels, None
        for layer in self.chain:
            if layer is self.backbone:
                feature_map, x = self.network(x, training=False)
            elif layer is self.output_layer:
                x = keras.ops.matmul(tf.cast(x, tf.float32), self.output_layer.kernel)
                if self.output_layer.bias is not None:
                    x = x + self.output_layer.bias
            else:
                x = layer(x, training=False)
        return tf.cast(feature_map, tf.float32), tf.cast(x, tf.float32)

    def _check_agreement(self, pixels, probabilities):
        expected = np.asarray(self.model(pixels, training=False), np.float64)
        gap = float(np.abs(expected.reshape(probabilities.shape) - np.asarray(probabilities, np.float64)).max())
        if gap > _AGREEMENT:
            raise ValueError(f"model {self.model.name!r}: its layers run one after another give probabilities "
                             f"{gap:.3g} away from the model's own; Grad-CAM needs a model whose layers form a "
                             "chain (input → … → backbone → … → Dense)")


def grad_cam(model, images, target_class=None, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heat maps `[N, S, S]` in [0, 1] (see `GradCam`).

    Example:
        maps = tltf.saliency.grad_cam(model, test_images[:8])
    """
    return GradCam(model, layer_name)(images, target_class)[0]


def feature_map_layer(network, min_side: int = MIN_SIDE):
    """The layer Grad-CAM explains by default: the last one whose feature map is at least `min_side` cells on a
    side (padding layers and what comes before the first layer with weights aside); the last feature map when
    none is that large.

    The last map alone is too coarse at small sizes: MobileNetV2 at 96 px ends in 3×3, and on X-rays with a
    square planted at random places its maps do not find the square (peak in the square 6% of the time, chance
    5%); its last 6×6 map finds it about half the time and its maps differ from image to image on real X-rays.
    Finer maps (12×12) find the square about as often but are often blank (the channel-averaged gradient is
    negative everywhere): 60% of the real test X-rays (`benchmarks/saliency_localisation.py`, docs/trust.md).
    """
    import keras

    maps, weighted = [], False
    for layer in network.layers:
        weighted = weighted or bool(layer.weights)
        if weighted and len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.ZeroPadding2D):
            maps.append(layer)
    if not maps:
        raise ValueError(f"backbone {network.name!r} has no layer with a 4-D output [N, h, w, channels] to explain")
    large = [layer for layer in maps if layer.output.shape[1] is not None and layer.output.shape[1] >= min_side]
    return (large or maps)[-1]


def _chain(model, backbone):
    """The model's layers after its input, the head's own layers in place of the head."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer is not backbone and isinstance(layer, keras.Model):
            yield from (inner for inner in layer.layers if not isinstance(inner, keras.layers.InputLayer))
        else:
            yield layer
