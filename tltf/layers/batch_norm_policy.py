import keras

BN_MODES = ("frozen", "train")


@keras.saving.register_keras_serializable(package="tltf")
class BatchNormPolicy(keras.layers.Layer):
    """Runs a wrapped backbone with its BatchNorm in a declared mode.

    With `mode="frozen"` the wrapped layer is always called with
    `training=False`, so BatchNorm uses and keeps its moving statistics
    whatever `trainable` says and whatever `fit` passes. A wrapper is needed
    because a functional model overrides a nested layer's explicit
    `training=False` with the outer call's value.

    Example:
        backbone = keras.applications.MobileNetV2(include_top=False, pooling="avg", weights=None)
        features = BatchNormPolicy(backbone, mode="frozen")(inputs)

    Args:
        layer: the backbone (any layer or model).
        mode: `"frozen"` (inference-mode BN) or `"train"` (BN follows
            `training`, i.e. batch statistics while fitting trainable layers).
        family: the backbone family (`tltf.models.BackboneSpec.family`),
            recorded so block maps can split the backbone into units.
        adapters_only: the backbone has LoRA adapters and nothing else of it
            trains but BatchNorm (`tltf.models.lora.freeze_outside_adapters`);
            saved, so a loaded model is frozen the same way before its
            optimizer is rebuilt.
    """

    def __init__(self, layer, mode: str = "frozen", family=None, adapters_only: bool = False, **kwargs):
        super().__init__(**kwargs)
        if mode not in BN_MODES:
            raise ValueError(f"mode must be one of {BN_MODES}, got {mode!r}")
        self.layer = layer
        self.mode = mode
        self.family = family
        self.adapters_only = bool(adapters_only)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        if not self.trainable:
            from tltf._keras_internals import freeze_every_layer

            # A backbone rebuilt from its config (a loaded KerasHub transformer) makes the sublayers it creates
            # itself trainable again, whatever it was saved as, and Keras' `trainable = False` does not reach them.
            freeze_every_layer(self.layer)
        if self.adapters_only:
            from tltf._keras_internals import freeze_all_but_adapters

            freeze_all_but_adapters(self.layer)
        self.built = True

    def call(self, inputs, training=None):
        if self.mode == "frozen":
            training = False
        return self.layer(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.layer),
            "mode": self.mode,
            "family": self.family,
            "adapters_only": self.adapters_only,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
