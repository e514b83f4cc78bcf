"""AdaBN: the source-trained classifier with BatchNorm statistics re-estimated on the target domain."""

from __future__ import annotations

import numpy as np

from tltf.log import logger

# Variances below this count as this: a channel constant in both domains keeps its statistics.
TINY = 1e-12


def adapt_batch_norm(model, target_images, batch_size: int = 64, batches: int = 32, seed: int = 0,
                     source_images=None) -> int:
    """Re-estimates every BatchNorm layer's moving statistics on the target images (AdaBN, Li et al., 2016);
    returns the batches of target images used.

    Classic AdaBN (no `source_images`) sets each layer's statistics to the target's: right for a network whose
    BatchNorm trained on the source, whose moving statistics are then the source's. A fine-tune that kept
    BatchNorm frozen at ImageNet's statistics (tltf's default with pretrained weights) normalised the source with
    ImageNet's, not the source's: its head learned features that are not standardised, and standardising the
    target's instead changes what every layer passes on (measured: 0.565 → 0.490 on MNIST-M). With
    `source_images`, each layer's statistics are set so that, in inference mode, the target's activations after
    it have the per-channel mean and variance the source's have after it in the unchanged model: for the layer's
    own statistics (μ, σ²), the source's input moments (μ_s, σ_s²) and the target's (μ_t, σ_t²), with
    r = σ_t / σ_s, the new ones are μ_t − (μ_s − μ)·r and σ²·r² (σ² with BatchNorm's ε). When the statistics
    were the source's, that is classic AdaBN (up to ε). The target's moments at each layer are taken with the
    layers before it already matched (each batch matched with its own moments on the way, as BatchNorm does in
    training).

    Nothing trains: BatchNorm layers frozen or inside a frozen `BatchNormPolicy` are adapted too; weights and
    every other variable stay as they were. Seeded samples of unaugmented images.

    Example:
        model = keras.models.load_model("run/model.keras")
        tltf.adapt.adapt_batch_norm(model, target_images, source_images=x_train)   # uint8 [N,S,S,3], no labels

    Args:
        model: a tltf classifier (or any Keras model with BatchNormalization layers).
        target_images: uint8 `[N,S,S,3]` target images, an array or an `ImageStore`.
        batch_size: images per batch (batch statistics depend on it: use the training batch size).
        batches: at most this many batches (of target images, and of source images).
        seed: seeds which images are used.
        source_images: the source's training images (unaugmented): match the source's statistics as the model
            sees them; None: classic AdaBN.
    """
    from tltf.adapt.selection import seeded_subset
    from tltf.train.callbacks.batch_norm_calibration import batch_norm_layers

    norms = batch_norm_layers(model)
    count = batch_size * batches
    target = np.asarray(seeded_subset(target_images, count, np.random.default_rng(seed)), np.float32)
    if source_images is None:
        used = _classic(model, norms, target, batch_size)
    else:
        source = np.asarray(seeded_subset(source_images, count, np.random.default_rng(seed)), np.float32)
        used = _matched_to_source(model, norms, source, target, batch_size)
    kind = "matched to the source's" if source_images is not None else "set to the target's"
    logger.info(f"AdaBN: {len(norms)} BatchNorm layers' statistics {kind}, from {len(target)} target images "
                f"({used} batches)")
    return used


def _batches(images: np.ndarray, batch_size: int):
    return (images[start:start + batch_size] for start in range(0, len(images), batch_size))


def _classic(model, norms, target: np.ndarray, batch_size: int) -> int:
    """Each layer's statistics := the average of the target batches' (BatchNorm in training mode)."""
    from tltf.layers import BatchNormPolicy
    from tltf.train.callbacks.batch_norm_calibration import calibrate_batch_norm

    policies = [layer for layer in _all_layers(model) if isinstance(layer, BatchNormPolicy)]
    modes = [policy.mode for policy in policies]
    trainable = [norm.trainable for norm in norms]
    try:
        # Batch statistics are computed only by a BatchNorm that trains, in a wrapper that lets it.
        for policy in policies:
            policy.mode = "train"
        for norm in norms:
            norm.trainable = True
        return calibrate_batch_norm(model, _batches(target, batch_size))
    finally:
        for policy, mode in zip(policies, modes):
            policy.mode = mode
        for norm, flag in zip(norms, trainable):
            norm.trainable = flag


def _matched_to_source(model, norms, source: np.ndarray, target: np.ndarray, batch_size: int) -> int:
    """Two inference-mode passes with each BatchNorm's call replaced: the source's input moments as the model
    stands, then the target's, each target batch normalised to the source's moments on the way."""
    source_moments = _input_moments(model, norms, source, batch_size, matched=None)
    target_moments = _input_moments(model, norms, target, batch_size, matched=source_moments)
    for norm, (source_mean, source_var), (target_mean, target_var) in zip(norms, source_moments, target_moments):
        mean, variance = norm.moving_mean.numpy(), norm.moving_variance.numpy()
        new_mean, new_variance = _matched_statistics(mean, variance, source_mean, source_var, target_mean,
                                                     target_var, norm.epsilon)
        norm.moving_mean.assign(new_mean.astype(mean.dtype))
        norm.moving_variance.assign(new_variance.astype(variance.dtype))
    return -(-len(target) // batch_size)


def _matched_statistics(mean, variance, source_mean, source_var, target_mean, target_var, epsilon):
    """The statistics under which a BatchNorm maps inputs with the target's moments to what it maps inputs with
    the source's moments to (per channel, first two moments)."""
    ratio = np.sqrt(np.maximum(target_var, TINY) / np.maximum(source_var, TINY))
    return target_mean - (source_mean - mean) * ratio, np.maximum((variance + epsilon) * ratio ** 2 - epsilon, 0.0)


def _input_moments(model, norms, images: np.ndarray, batch_size: int, matched) -> list:
    """Per BatchNorm layer, the mean and variance (per channel) of its inputs over `images`, in inference mode.

    With `matched` (the source's moments per layer) each layer normalises every batch with the statistics that
    map the batch's own moments onto the source's, so the layers after it see target activations matched the
    way the finished statistics will match them."""
    import contextlib

    import keras
    import tensorflow as tf

    from tltf._keras_internals import replaced_call

    sums = [tf.Variable(tf.zeros(norm.moving_mean.shape, tf.float64), trainable=False) for norm in norms]
    squares = [tf.Variable(tf.zeros(norm.moving_mean.shape, tf.float64), trainable=False) for norm in norms]
    counts = [tf.Variable(tf.zeros((), tf.float64), trainable=False) for _ in norms]

    def recording(index, norm):
        def call(inputs, training=None, mask=None):
            x = keras.ops.cast(inputs, "float32")
            axes = [axis for axis in range(len(x.shape)) if axis != norm.axis % len(x.shape)]
            batch_mean = keras.ops.mean(x, axis=axes)
            batch_var = keras.ops.var(x, axis=axes)
            pixels = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), tf.float64)
            sums[index].assign_add(tf.cast(batch_mean, tf.float64) * pixels)
            squares[index].assign_add(tf.cast(batch_var + batch_mean ** 2, tf.float64) * pixels)
            counts[index].assign_add(pixels)
            if matched is None:
                mean, variance = norm.moving_mean, norm.moving_variance
            else:
                source_mean, source_var = (tf.constant(value, tf.float32) for value in matched[index])
                ratio = tf.sqrt(tf.maximum(batch_var, TINY) / tf.maximum(source_var, TINY))
                mean = batch_mean - (source_mean - norm.moving_mean) * ratio
                variance = tf.maximum((norm.moving_variance + norm.epsilon) * ratio ** 2 - norm.epsilon, 0.0)
            outputs = keras.ops.batch_normalization(x, mean=mean, variance=variance, axis=norm.axis,
                                                    offset=norm.beta, scale=norm.gamma, epsilon=norm.epsilon)
            return keras.ops.cast(outputs, norm.compute_dtype)
        return call

    with contextlib.ExitStack() as stack:
        for index, norm in enumerate(norms):
            stack.enter_context(replaced_call(norm, recording(index, norm)))
        forward = tf.function(lambda batch: model(batch, training=False))
        for batch in _batches(images, batch_size):
            forward(batch)
    moments = []
    for total, square, count in zip(sums, squares, counts):
        mean = (total / count).numpy()
        moments.append((mean, np.maximum((square / count).numpy() - mean ** 2, 0.0)))
    return moments


def _all_layers(layer):
    """`layer` and everything under it, through nested models and `BatchNormPolicy` wrappers."""
    from tltf.layers import BatchNormPolicy

    yield layer
    children = [layer.layer] if isinstance(layer, BatchNormPolicy) else getattr(layer, "layers", None) or []
    for child in children:
        yield from _all_layers(child)


class BatchNormAdaptation:
    """A plan's finishing step: AdaBN, matched to the source's statistics, on the delivered classifier once its
    best epoch is restored.

    Keeps the weights it found (the source-only model), so the run's source-only baseline costs no second
    training.

    Args:
        target_images: the target domain's unlabelled images.
        source_images: the source's training images, unaugmented.
        batch_size: images per batch.
        batches: at most this many batches.
        seed: seeds the samples of images.
    """

    def __init__(self, target_images, source_images, batch_size: int, batches: int, seed: int):
        self.target_images, self.source_images = target_images, source_images
        self.batch_size, self.batches, self.seed = batch_size, batches, seed
        self.source_only_weights = None

    def __call__(self, model) -> None:
        self.source_only_weights = model.get_weights()
        adapt_batch_norm(model, self.target_images, self.batch_size, self.batches, self.seed,
                         source_images=self.source_images)
