import keras
from keras import ops

DIRECTIONS = ("horizontal", "vertical")


@keras.saving.register_keras_serializable(package="tltf")
class FlipImages(keras.layers.Layer):
    """Mirrors `[N,H,W,C]` images, always (in training and inference): a test-time augmentation view.

    Unlike `keras.layers.RandomFlip`, nothing is random and inference is not skipped, so a model that averages
    an image and its mirror computes the same thing in Keras, in a SavedModel and in TF Serving.

    Example:
        mirrored = FlipImages("horizontal")(images)

    Args:
        direction: `"horizontal"` (left–right) or `"vertical"` (top–bottom).
    """

    def __init__(self, direction: str = "horizontal", **kwargs):
        super().__init__(**kwargs)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.direction = direction

    def call(self, inputs):
        return ops.flip(inputs, axis=2 if self.direction == "horizontal" else 1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "direction": self.direction}
