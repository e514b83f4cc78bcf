"""BatchNorm statistics recomputed from training batches before each validation."""

from __future__ import annotations

import keras
import numpy as np


class BatchNormCalibration(keras.callbacks.Callback):
    """Sets BatchNorm moving statistics to the average over training batches before each validation.

    A network trained from random initialisation normalises with each batch's statistics while it trains,
    but validates and predicts with the moving averages. Those start at mean 0 and variance 1 and follow the
    real statistics only at the momentum's pace, layer after layer: after a few dozen steps a random
    MobileNetV2 in inference mode passes activations of ~1e-11 and predicts a constant, however well its
    training-mode outputs separate the classes. On small data that is the whole run.

    Before every validation (Keras calls `on_test_begin` then) this callback runs the model in training mode
    on `batches` batches of `images` and sets each BatchNorm layer's moving mean and variance to the average
    of those batches' statistics under the current weights. Layers that run in inference mode in training
    (frozen BatchNorm) are left alone, as are the weights and every other variable: random-generator states
    are put back, so the training that follows is exactly what it would have been without the calibration.

    Example:
        model.fit(train_ds, validation_data=val_ds, epochs=10,
                  callbacks=[tltf.callbacks.BatchNormCalibration(x_train[:1024], batch_size=64)])

    Args:
        images: the model's inputs to calibrate on (training images without augmentation), an array or a
            `tf.data.Dataset` of input batches.
        batch_size: the batch size when `images` is an array (use the training batch size: batch statistics
            depend on it).
        batches: at most this many batches are used.
        model: the model to calibrate, when it is not the one being fitted (e.g. a classifier inside a
            wrapper that takes other inputs); default: the fitted model.
    """

    def __init__(self, images, batch_size: int = 32, batches: int = 16, model=None):
        super().__init__()
        self.images, self.batch_size, self.batches = images, batch_size, batches
        self.calibrated_model = model

    def on_test_begin(self, logs=None):
        model = self.calibrated_model or self.model
        if getattr(self, "_forward_model", None) is not model:  # one traced pass per model, reused every epoch
            self._forward_model, self._forward = model, training_forward(model)
        calibrate_batch_norm(model, self._input_batches(), forward=self._forward)

    def _input_batches(self):
        if isinstance(self.images, np.ndarray):
            count = min(len(self.images), self.batch_size * self.batches)
            return (self.images[start:start + self.batch_size] for start in range(0, count, self.batch_size))
        return (batch[0] if isinstance(batch, tuple) else batch for batch in self.images.take(self.batches))


def training_forward(model):
    """`model(batch, training=True)` as one traced function (eagerly, a deep network's pass is ~10× slower)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(batch):
        model(batch, training=True)

    return forward


def calibrate_batch_norm(model, input_batches, forward=None) -> int:
    """Moving statistics of `model`'s BatchNorm layers := the average of `input_batches`' statistics.

    Returns the number of batches used. Everything but those statistics is restored afterwards.

    Args:
        model: the model whose BatchNorm layers are calibrated.
        input_batches: an iterable of input batches.
        forward: `training_forward(model)`, to reuse one traced pass over several calibrations.
    """
    norms = batch_norm_layers(model)
    if not norms:
        return 0
    statistics = [v for norm in norms for v in (norm.moving_mean, norm.moving_variance)]
    kept = {id(v) for v in statistics}
    others = [v for v in model.non_trainable_variables if id(v) not in kept]
    saved = [v.numpy() for v in others]
    momenta = [norm.momentum for norm in norms]
    forward = forward or training_forward(model)
    totals = [np.zeros(v.shape, np.float64) for v in statistics]
    count = 0
    try:
        # Momentum 0 makes each pass leave its own batch's statistics in the moving ones (a traced pass keeps
        # the momentum it was traced with, which is always 0 here); their average is taken outside.
        for norm in norms:
            norm.momentum = 0.0
        for count, batch in enumerate(input_batches, start=1):
            forward(batch)
            for total, variable in zip(totals, statistics):
                total += variable.numpy()
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for variable, value in zip(others, saved):
            variable.assign(value)
    if count:
        for total, variable in zip(totals, statistics):
            variable.assign((total / count).astype(variable.dtype))
    return count


def batch_norm_layers(model) -> list:
    """Every `keras.layers.BatchNormalization` inside `model`, nested models and wrappers included."""
    from tltf.models.anatomy import leaf_layers

    return [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
