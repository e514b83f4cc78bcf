import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tltf")
class InputResolution(keras.layers.Layer):
    """Shrinks `[N,S,S,C]` images to a smaller square size held in a variable, or passes them through unchanged.

    The size is a (non-trainable) variable, so a callback can change it between epochs without Keras tracing
    the train step again: `tltf.callbacks.ProgressiveResizing` sets it. At its full size (the input's, the
    default) the layer returns its input as it is, bit for bit. Shrinking uses antialiased bilinear resizing.
    The layer's output has no static height and width, so what follows it must accept any size (a convolutional
    backbone with global pooling does; a ViT's position table does not).

    Example:
        images = keras.Input((96, 96, 3))
        shrink = InputResolution(96)
        outputs = classifier(shrink(images))   # classifier: any model built at 96 px that accepts other sizes
        shrink.size.assign(64)                 # the next steps run at 64 px

    Args:
        full_size: the input's height and width; the size at which nothing is resized.
    """

    def __init__(self, full_size: int, **kwargs):
        super().__init__(**kwargs)
        self.full_size = int(full_size)
        self.size = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.full_size),
                                    dtype="int32", trainable=False, name="size")

    def call(self, images):
        size = tf.convert_to_tensor(self.size)
        return tf.cond(size < self.full_size,
                       lambda: tf.image.resize(images, tf.stack([size, size]), antialias=True),
                       lambda: images)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, None, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "full_size": self.full_size}
