"""Keras layers tltf adds; each is serializable and usable in user models."""

from tltf.layers.batch_norm_policy import BatchNormPolicy
from tltf.layers.class_token import ClassToken
from tltf.layers.flip_images import FlipImages
from tltf.layers.gradient_reversal import GradientReversal
from tltf.layers.image_preprocessing import ImagePreprocessing
from tltf.layers.input_resolution import InputResolution
from tltf.layers.probability_average import ProbabilityAverage

__all__ = [
    "BatchNormPolicy", "ClassToken", "FlipImages", "GradientReversal", "ImagePreprocessing", "InputResolution",
    "ProbabilityAverage",
]
