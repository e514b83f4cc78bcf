"""The feature cache: run a frozen backbone once, train the head on its output."""

from __future__ import annotations

import numpy as np


def extract_features(model, *image_sets, batch_size: int, verbose: int = 1) -> list[np.ndarray]:
    """Pooled backbone features of each image set, computed once with a progress bar.

    One extractor serves every set, so its inference function is traced once.

    Example:
        train_features, val_features = extract_features(model, train_images, val_images, batch_size=64)

    Args:
        model: a model from `tltf.build_model`.
        *image_sets: uint8 `[N,S,S,3]` each, an array or an `ImageStore`.
        batch_size: inference batch size.
        verbose: Keras progress-bar verbosity.
    """
    from tltf.data.pipeline import images_in_batches
    from tltf.models.anatomy import feature_extractor

    extractor = feature_extractor(model)
    # float32 whatever the compute precision: the head's input is float32.
    return [extractor.predict(images_in_batches(images, batch_size), verbose=verbose).astype("float32")
            for images in image_sets]
