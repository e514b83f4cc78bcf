"""The parity check: the reloaded SavedModel must answer as the in-process Keras model does."""

from __future__ import annotations

import dataclasses

import numpy as np

FLOAT_TOLERANCE = 1e-5
# JPEG at quality 95 moves pixels by a few levels; on a probability that is a
# few hundredths at most for a sound model (measured: see docs/serving.md).
JPEG_TOLERANCE = 0.05


@dataclasses.dataclass
class ParityReport:
    images: int
    float_max_abs_diff: float
    png_max_abs_diff: float
    jpeg_max_abs_diff: float

    @property
    def ok(self) -> bool:
        return (self.float_max_abs_diff <= FLOAT_TOLERANCE and self.png_max_abs_diff <= FLOAT_TOLERANCE
                and self.jpeg_max_abs_diff <= JPEG_TOLERANCE)

    def lines(self) -> list[str]:
        def verdict(value, bound):
            return f"{value:.2e} (bound {bound:g}) {'ok' if value <= bound else 'FAILED'}"

        return [
            f"parity on {self.images} validation images, max |SavedModel − Keras| of the probabilities:",
            f"  serving_default, float pixels : {verdict(self.float_max_abs_diff, FLOAT_TOLERANCE)}",
            f"  serving_bytes, PNG            : {verdict(self.png_max_abs_diff, FLOAT_TOLERANCE)}",
            f"  serving_bytes, JPEG q95       : {verdict(self.jpeg_max_abs_diff, JPEG_TOLERANCE)}",
        ]


def encode_images(images: np.ndarray, fmt: str = "png") -> list[bytes]:
    """Encodes uint8 `[N,H,W,3]` images as PNG or JPEG (quality 95) files' bytes."""
    import tensorflow as tf

    if fmt == "png":
        return [tf.io.encode_png(image).numpy() for image in images]
    return [tf.io.encode_jpeg(image, quality=95).numpy() for image in images]


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
    expected = predict_probabilities(model, images)
    as_float = loaded.signatures[FLOAT_SIGNATURE](**{FLOAT_INPUT: tf.constant(images, tf.float32)})
    diffs = {"float": np.abs(as_float["probabilities"].numpy() - expected).max()}
    for fmt in ("png", "jpeg"):
        served = loaded.signatures[BYTES_SIGNATURE](**{BYTES_INPUT: tf.constant(encode_images(images, fmt))})
        diffs[fmt] = np.abs(served["probabilities"].numpy() - expected).max()
    return ParityReport(len(images), float(diffs["float"]), float(diffs["png"]), float(diffs["jpeg"]))
