"""Keras layers tltf adds; each is serializable and usable in user models."""

from tltf.layers.batch_norm_policy import BatchNormPolicy
from tltf.layers.image_preprocessing import ImagePreprocessing

__all__ = ["BatchNormPolicy", "ImagePreprocessing"]
