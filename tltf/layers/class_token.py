import keras


@keras.saving.register_keras_serializable(package="tltf")
class ClassToken(keras.layers.Layer):
    """The first token of a transformer's output sequence: `[N, T, D] → [N, D]`.

    ViT, DINOv2 and CLIP's image encoder put a learned class token first and
    train it to summarise the image; classifiers read their features there.

    Example:
        features = ClassToken()(keras_hub.models.ViTBackbone.from_preset(folder)(images))
    """

    def call(self, inputs):
        return inputs[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])
