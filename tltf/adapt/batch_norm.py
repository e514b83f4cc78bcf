"""AdaBN: the source-trained classifier with BatchNorm statistics re-estimated on the target domain."""

from __future__ import annotations

import numpy as np

from tltf.log import logger


def adapt_batch_norm(model, target_images, batch_size: int = 64, batches: int = 32, seed: int = 0) -> int:
    """Sets every BatchNorm layer's moving statistics to the target images' (Li et al., 2016); returns batches used.

    Nothing trains: each BatchNorm layer (frozen ones and those inside a
    frozen `BatchNormPolicy` included) gets the average of its batch
    statistics over up to `batches` batches of unaugmented target images, a
    seeded sample. Weights and every other variable are left as they were.

    Example:
        model = keras.models.load_model("run/model.keras")
        tltf.adapt.adapt_batch_norm(model, target_images)   # uint8 [N,S,S,3], no labels

    Args:
        model: a tltf classifier (or any Keras model with BatchNormalization layers).
        target_images: uint8 `[N,S,S,3]` target images, an array or an `ImageStore`.
        batch_size: images per batch (batch statistics depend on it: use the training batch size).
        batches: at most this many batches.
        seed: seeds which target images are used.
    """
    from tltf.layers import BatchNormPolicy
    from tltf.train.callbacks.batch_norm_calibration import batch_norm_layers, calibrate_batch_norm

    count = min(len(target_images), batch_size * batches)
    chosen = np.sort(np.random.default_rng(seed).permutation(len(target_images))[:count])
    sample = np.asarray(target_images[chosen], dtype=np.float32)
    policies = [layer for layer in _all_layers(model) if isinstance(layer, BatchNormPolicy)]
    modes = [policy.mode for policy in policies]
    norms = batch_norm_layers(model)
    trainable = [norm.trainable for norm in norms]
    try:
        # Batch statistics are computed only by a BatchNorm that trains, in a wrapper that lets it.
        for policy in policies:
            policy.mode = "train"
        for norm in norms:
            norm.trainable = True
        used = calibrate_batch_norm(model, (sample[start:start + batch_size] for start in range(0, count, batch_size)))
    finally:
        for policy, mode in zip(policies, modes):
            policy.mode = mode
        for norm, flag in zip(norms, trainable):
            norm.trainable = flag
    logger.info(f"AdaBN: {len(norms)} BatchNorm layers re-estimated on {count} target images ({used} batches)")
    return used


def _all_layers(layer):
    """`layer` and everything under it, through nested models and `BatchNormPolicy` wrappers."""
    from tltf.layers import BatchNormPolicy

    yield layer
    children = [layer.layer] if isinstance(layer, BatchNormPolicy) else getattr(layer, "layers", None) or []
    for child in children:
        yield from _all_layers(child)


class BatchNormAdaptation:
    """A plan's finishing step: AdaBN on the delivered classifier once its best epoch is restored.

    Keeps the weights it found (the source-only model), so the run's source-only baseline costs no second
    training.

    Args:
        target_images: the target domain's unlabelled images.
        batch_size: images per batch.
        batches: at most this many batches.
        seed: seeds the sample of target images.
    """

    def __init__(self, target_images, batch_size: int, batches: int, seed: int):
        self.target_images, self.batch_size, self.batches, self.seed = target_images, batch_size, batches, seed
        self.source_only_weights = None

    def __call__(self, model) -> None:
        self.source_only_weights = model.get_weights()
        adapt_batch_norm(model, self.target_images, self.batch_size, self.batches, self.seed)
