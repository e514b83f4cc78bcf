"""The parity check: the reloaded SavedModel must answer as the in-process Keras model does, on the same input.

Each signature is compared like with like: `serving_default` against Keras on
the same float pixels, `serving_bytes` against Keras on the same PNG or JPEG
bytes decoded and resized by the same TF ops (`tltf.data.images`). All three
must agree within `FLOAT_TOLERANCE`. How far JPEG re-encoding moves the
model's output is measured too, as a property of the model for the model
card, never a reason to refuse an export.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FLOAT_TOLERANCE = 1e-5
JPEG_QUALITY = 95


@dataclasses.dataclass
class ParityReport:
    """Max |SavedModel − Keras| of the probabilities per signature, and the model's JPEG sensitivity.

    Args:
        images: how many validation images were compared.
        float_max_abs_diff: `serving_default` against Keras on the same pixels.
        png_max_abs_diff: `serving_bytes` on PNG files against Keras on the decoded files.
        jpeg_max_abs_diff: `serving_bytes` on JPEG files against Keras on the decoded files.
        jpeg_sensitivity: max |Keras on JPEG q95 − Keras on the original pixels|: not a check.
    """

    images: int
    float_max_abs_diff: float
    png_max_abs_diff: float
    jpeg_max_abs_diff: float
    jpeg_sensitivity: float

    @property
    def ok(self) -> bool:
        return max(self.float_max_abs_diff, self.png_max_abs_diff, self.jpeg_max_abs_diff) <= FLOAT_TOLERANCE

    def lines(self) -> list[str]:
        def verdict(value):
            return f"{value:.2e} (bound {FLOAT_TOLERANCE:g}) {'ok' if value <= FLOAT_TOLERANCE else 'FAILED'}"

        return [
            f"parity on {self.images} validation images, max |SavedModel − Keras| of the probabilities, same input:",
            f"  serving_default, float pixels : {verdict(self.float_max_abs_diff)}",
            f"  serving_bytes, PNG            : {verdict(self.png_max_abs_diff)}",
            f"  serving_bytes, JPEG q{JPEG_QUALITY}       : {verdict(self.jpeg_max_abs_diff)}",
            f"the model's JPEG sensitivity (not a check): re-encoding as JPEG q{JPEG_QUALITY} moves its "
            f"probabilities by up to {self.jpeg_sensitivity:.2e}",
        ]


def encode_images(images: np.ndarray, fmt: str = "png") -> list[bytes]:
    """Encodes uint8 `[N,H,W,3]` images as PNG or JPEG (quality 95) files' bytes."""
    import tensorflow as tf

    if fmt == "png":
        return [tf.io.encode_png(image).numpy() for image in images]
    return [tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy() for image in images]


def decoded(files: list[bytes], size: int) -> np.ndarray:
    """What `serving_bytes` feeds the model: each file decoded and resized by tltf's own TF ops."""
    from tltf.data.images import decode_pixels, resize_pixels

    return np.stack([resize_pixels(decode_pixels(data)[None], size)[0].numpy() for data in files])


def check_parity(saved_model_dir, model, images: np.ndarray) -> ParityReport:
    """Runs both signatures of the SavedModel at `saved_model_dir` against `model` on `images`.

    Args:
        saved_model_dir: a SavedModel written by `tltf.export`.
        model: the in-process Keras model.
        images: uint8 `[N,S,S,3]` at the model's input size.
    """
    import tensorflow as tf

    from tltf.evaluate.evaluator import predict_probabilities
    from tltf.export.signatures import BYTES_INPUT, BYTES_SIGNATURE, FLOAT_INPUT, FLOAT_SIGNATURE

    loaded = tf.saved_model.load(str(saved_model_dir))
    size = int(model.input.shape[1])
    expected = predict_probabilities(model, images)
    as_float = loaded.signatures[FLOAT_SIGNATURE](**{FLOAT_INPUT: tf.constant(images, tf.float32)})
    diffs = {"float": np.abs(as_float["probabilities"].numpy() - expected).max()}
    for fmt in ("png", "jpeg"):
        files = encode_images(images, fmt)
        served = loaded.signatures[BYTES_SIGNATURE](**{BYTES_INPUT: tf.constant(files)})["probabilities"].numpy()
        keras_on_files = predict_probabilities(model, decoded(files, size))
        diffs[fmt] = np.abs(served - keras_on_files).max()
        if fmt == "jpeg":
            diffs["jpeg_sensitivity"] = np.abs(keras_on_files - expected).max()
    return ParityReport(len(images), float(diffs["float"]), float(diffs["png"]), float(diffs["jpeg"]),
                        float(diffs["jpeg_sensitivity"]))
