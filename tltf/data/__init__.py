"""Data: sources (one module each, registered by name), splits, decoding and tf.data pipelines."""

from tltf.data.sources import SOURCE_NAMES, DataPeek, load_splits, peek_data
from tltf.data.splits import ImageSplits, Split, class_weights

__all__ = ["DataPeek", "ImageSplits", "SOURCE_NAMES", "Split", "class_weights", "load_splits", "peek_data"]
