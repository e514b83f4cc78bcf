"""The feature cache: run a frozen backbone once, train the head on its output."""

from __future__ import annotations

import numpy as np


def extract_features(model, images: np.ndarray, batch_size: int, verbose: int = 1) -> np.ndarray:
    """Pooled backbone features for `images`, computed once with a progress bar.

    Args:
        model: a model from `tltf.build_model`.
        images: uint8 `[N,S,S,3]`, an array or an `ImageStore`.
        batch_size: inference batch size.
        verbose: Keras progress-bar verbosity.
    """
    from tltf.data.pipeline import images_in_batches
    from tltf.models.anatomy import feature_extractor

    extractor = feature_extractor(model)
    # float32 whatever the compute precision: the head's input is float32.
    return extractor.predict(images_in_batches(images, batch_size), verbose=verbose).astype("float32")
