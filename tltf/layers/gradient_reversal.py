import keras


@keras.saving.register_keras_serializable(package="tltf")
class GradientReversal(keras.layers.Layer):
    """Identity on the forward pass; multiplies the gradient by −λ on the backward pass.

    The core of domain-adversarial training: a domain classifier behind this
    layer learns to tell domains apart while the features in front of it
    learn to make that impossible. λ is a non-trainable variable, so a
    callback can change it during `fit` without retracing.

    Example:
        reversal = GradientReversal(0.0)
        domain_logit = domain_head(reversal(features))
        reversal.lambda_.assign(0.5)

    Args:
        lambda_: the initial λ.

    Raises:
        NotImplementedError: on a Keras backend other than TensorFlow (the
            custom gradient is written with `tf.custom_gradient`).
    """

    def __init__(self, lambda_: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                f"GradientReversal needs the TensorFlow backend for its custom gradient; "
                f"Keras runs on {keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)"
            )
        self.initial_lambda = float(lambda_)

    def build(self, input_shape):
        self.lambda_ = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial_lambda),
                                       trainable=False, name="lambda")

    def call(self, inputs):
        import tensorflow as tf

        scale = tf.cast(tf.convert_to_tensor(self.lambda_), inputs.dtype)

        @tf.custom_gradient
        def reverse(x):
            def gradient(upstream):
                return -scale * upstream

            return tf.identity(x), gradient

        return reverse(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lambda_": self.initial_lambda}
