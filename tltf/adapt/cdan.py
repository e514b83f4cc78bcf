import keras
from keras import ops

from tltf.adapt.base import class_probabilities, prediction_entropy
from tltf.adapt.dann import DomainAdversarialModel

# Above this many features × classes the multilinear map is randomised to this width (Long et al., 2018).
RANDOMIZED_WIDTH = 1024


@keras.saving.register_keras_serializable(package="tltf")
class ConditionalAdversarialModel(DomainAdversarialModel):
    """Conditional domain-adversarial training (CDAN, with entropy conditioning: CDAN+E), with plain `model.fit`.

    Like `DomainAdversarialModel`, but the domain classifier sees the features
    together with the classifier's predictions, through their multilinear map
    (the outer product `f ⊗ p`, flattened), so it can align each class's
    features instead of only the marginal distribution that DANN aligns, and
    swap classes while doing it. When `features × classes` exceeds 4,096 the
    map is randomised (`(f·R_f) ⊙ (p·R_p) / √1024`, fixed Gaussian `R`s), as
    in the paper. The predictions enter without gradient; the gradient
    reversal acts on the features. With `entropy_conditioning`, each example's
    domain loss is weighted by `1 + exp(−H(p))` (normalised within each domain),
    so confident predictions count more than uncertain ones.

    Example:
        cdan = ConditionalAdversarialModel(model, hidden_units=[256], dropout=0.5)
        cdan.compile(optimizer=keras.optimizers.AdamW(1e-4))
        cdan.fit(tf.data.Dataset.zip((source_ds, target_ds.repeat())), validation_data=val_ds, epochs=10,
                 callbacks=[GradientReversalSchedule(cdan.reversal, total_steps=10 * steps)])

    Args:
        classifier: a model from `tltf.build_model`.
        hidden_units: the domain head's hidden layer sizes.
        dropout: dropout before each hidden layer of the domain head.
        features: `"backbone"` or `"head"`, as in `DomainAdversarialModel`.
        entropy_conditioning: weight the domain loss by prediction certainty (CDAN+E).
        seed: seeds the randomised map's matrices.
    """

    def __init__(self, classifier, hidden_units=(256,), dropout: float = 0.5, features: str = "backbone",
                 entropy_conditioning: bool = True, seed: int = 0, **kwargs):
        self.entropy_conditioning = bool(entropy_conditioning)
        self.seed = int(seed)
        self.multilinear = None
        super().__init__(classifier, hidden_units, dropout, features, **kwargs)

    def domain_input_dim(self, feature_dim: int) -> int:
        self.multilinear = MultilinearMap(self.num_classes, seed=self.seed, name="multilinear_map")
        self.multilinear.build((None, feature_dim))
        return self.multilinear.output_dim

    def domain_inputs(self, features, predictions):
        import tensorflow as tf

        probabilities = tf.stop_gradient(class_probabilities(predictions))
        return self.multilinear(ops.cast(self.reversal(features), "float32"), probabilities)

    def domain_weights(self, predictions, count):
        if not self.entropy_conditioning:
            return super().domain_weights(predictions, count)
        weights = 1.0 + ops.exp(-prediction_entropy(class_probabilities(predictions)))
        source, target = weights[:count], weights[count:]
        # Each domain's weights average 1, so neither domain outweighs the other.
        return ops.concatenate([source / ops.mean(source), target / ops.mean(target)], axis=0)

    def get_config(self):
        return {**super().get_config(), "entropy_conditioning": self.entropy_conditioning, "seed": self.seed}


@keras.saving.register_keras_serializable(package="tltf")
class MultilinearMap(keras.layers.Layer):
    """CDAN's conditioning: the flattened outer product of features and class probabilities, or its random projection.

    Example:
        mapped = MultilinearMap(num_classes=7)(features, probabilities)   # [B, D·7], or [B, 1024] when D·7 > 4096

    Args:
        num_classes: the width of the probabilities.
        seed: seeds the random matrices of the randomised form.
    """

    def __init__(self, num_classes: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.seed = int(seed)

    def build(self, feature_shape):
        self.feature_dim = int(feature_shape[-1])
        self.randomized = self.feature_dim * self.num_classes > 4096
        self.output_dim = RANDOMIZED_WIDTH if self.randomized else self.feature_dim * self.num_classes
        if self.randomized:
            normal = keras.initializers.RandomNormal(seed=self.seed)
            self.feature_projection = self.add_weight(shape=(self.feature_dim, RANDOMIZED_WIDTH), initializer=normal,
                                                      trainable=False, name="feature_projection")
            self.class_projection = self.add_weight(
                shape=(self.num_classes, RANDOMIZED_WIDTH), trainable=False, name="class_projection",
                initializer=keras.initializers.RandomNormal(seed=self.seed + 1))
        self.built = True

    def call(self, features, probabilities):
        if self.randomized:
            projected = ops.matmul(features, self.feature_projection) * ops.matmul(probabilities,
                                                                                   self.class_projection)
            return projected / float(RANDOMIZED_WIDTH) ** 0.5
        outer = ops.expand_dims(probabilities, 2) * ops.expand_dims(features, 1)  # [B, C, D]
        return ops.reshape(outer, (-1, self.num_classes * self.feature_dim))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "seed": self.seed}
