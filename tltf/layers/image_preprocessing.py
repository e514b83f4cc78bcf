import keras
from keras import ops

_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("caffe", "tf", "torch", "none")


@keras.saving.register_keras_serializable(package="tltf")
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw 0–255 RGB pixels to what an ImageNet backbone was trained on.

    The same transforms as `keras.applications.*.preprocess_input`, as a
    layer, so the model itself takes raw pixels and export, predict and user
    code cannot get preprocessing wrong.

    Example:
        x = ImagePreprocessing("caffe")(keras.Input((224, 224, 3)))

    Args:
        mode: `"caffe"` (RGB→BGR, ImageNet mean subtracted; ResNet),
            `"tf"` (scaled to [-1, 1]; MobileNetV2, ResNetV2),
            `"torch"` (scaled to [0, 1], ImageNet mean/std; DenseNet) or
            `"none"` (the backbone normalises its own input).
    """

    def __init__(self, mode: str = "none", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_BGR_MEAN, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, self.compute_dtype)
            return (x / 255.0 - mean) / std
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
