import keras
from keras import ops

from tltf.adapt.base import AdaptationModel
from tltf.layers import GradientReversal


@keras.saving.register_keras_serializable(package="tltf")
class DomainAdversarialModel(AdaptationModel):
    """Domain-adversarial training (DANN) of a tltf classifier, with plain `model.fit`.

    Wraps a model from `tltf.build_model`: its pooled backbone features also
    go through a `GradientReversal` layer into a domain classifier (an MLP)
    that tells source images from target images. Each training batch is
    `((source_images, source_labels), target_images)`, so a zipped
    `tf.data.Dataset` feeds `fit` directly. The loss is the task loss on the
    source plus the domain loss on both; the logged metrics are the task AUC,
    the domain classifier's accuracy and λ. Validation batches are ordinary
    `(images, labels)`. The classifier itself (task path only, no domain
    head) is what gets saved and exported.

    The domain head's layers are named `domain_hidden_<i>` and `domain_logit`,
    so an optimizer can give them their own learning-rate multiplier
    (`tltf.adapt.domain_head_multipliers`): a discriminator slower than the
    features it judges loses the game and ends up below chance.

    Example:
        dann = DomainAdversarialModel(model, hidden_units=[256], dropout=0.5)
        dann.compile(optimizer=tltf.optimizers.LayerwiseAdamW(1e-4,
                     lr_multipliers=tltf.adapt.domain_head_multipliers(dann, 10.0)))
        dann.fit(tf.data.Dataset.zip((source_ds, target_ds.repeat())), validation_data=val_ds, epochs=10,
                 callbacks=[GradientReversalSchedule(dann.reversal, total_steps=10 * steps)])

    Args:
        classifier: a model from `tltf.build_model`.
        hidden_units: the domain head's hidden layer sizes.
        dropout: dropout before each hidden layer of the domain head.
        features: which representation is made domain-invariant:
            `"backbone"` (the pooled backbone features) or `"head"` (the
            output of an mlp head's hidden layers: the adapter that trains
            when the backbone is frozen).
    """

    def __init__(self, classifier, hidden_units=(256,), dropout: float = 0.5, features: str = "backbone",
                 **kwargs):
        super().__init__(classifier, **kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.dropout = float(dropout)
        self.features = features
        representation = _representation(classifier, features)
        # One forward pass gives both the task output and the features.
        self.twin = keras.Model(classifier.input, [classifier.output, representation], name="task_and_features")
        feature_dim = representation.shape[-1]
        self.reversal = GradientReversal(0.0, name="gradient_reversal")
        self.reversal.build((None, feature_dim))  # λ exists before the first step, for the schedule
        layers = [keras.Input((self.domain_input_dim(feature_dim),))]
        for index, units in enumerate(self.hidden_units, start=1):
            layers += [keras.layers.Dropout(self.dropout),
                       keras.layers.Dense(units, activation="relu", name=f"domain_hidden_{index}")]
        layers.append(keras.layers.Dense(1, dtype="float32", name="domain_logit"))  # target = 1
        self.domain_head = keras.Sequential(layers, name="domain_head")
        self.domain_loss = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)
        self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
        self.domain_accuracy = keras.metrics.BinaryAccuracy(name="domain_accuracy", threshold=0.0)
        self.lambda_tracker = keras.metrics.Mean(name="lambda")
        # Everything above is built; saying so lets a loaded model rebuild its optimizer and restore its state.
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.domain_loss_tracker, self.task_auc, self.domain_accuracy, self.lambda_tracker]

    def domain_input_dim(self, feature_dim: int) -> int:
        """The domain head's input width for features of `feature_dim`."""
        return feature_dim

    def domain_inputs(self, features, predictions):
        """What the domain head sees: the reversed features (a conditional method adds the predictions)."""
        return self.reversal(features)

    def domain_weights(self, predictions, count):
        """Per-example weights of the domain loss (uniform here)."""
        return ops.ones((ops.shape(predictions)[0],))

    def adaptation_loss(self, images, count):
        """The domain classifier's loss on source (0) and target (1) images, behind the gradient reversal."""
        import tensorflow as tf

        domains = tf.concat([tf.zeros((count, 1)), tf.ones((tf.shape(images)[0] - count, 1))], axis=0)
        predictions, features = self.twin(images, training=True)
        domain_logits = self.domain_head(self.domain_inputs(features, predictions), training=True)
        weights = tf.stop_gradient(self.domain_weights(predictions, count))
        domain_loss = tf.reduce_mean(weights * self.domain_loss(domains, domain_logits))
        return predictions, domain_loss, {"domain_loss": domain_loss, "domains": domains,
                                          "domain_logits": domain_logits}

    def track(self, domain_loss, domains, domain_logits) -> None:
        self.domain_loss_tracker.update_state(domain_loss)
        self.domain_accuracy.update_state(domains, domain_logits)
        self.lambda_tracker.update_state(ops.convert_to_tensor(self.reversal.lambda_))

    def get_config(self):
        return {**super().get_config(), "hidden_units": list(self.hidden_units), "dropout": self.dropout,
                "features": self.features}


def _representation(classifier, features: str):
    """The symbolic tensor made domain-invariant: the backbone's pooled output or the mlp head's hidden layer."""
    from tltf.models.anatomy import backbone_of, head_of

    representation = backbone_of(classifier).output
    if features == "backbone":
        return representation
    if features != "head":
        raise ValueError(f"features must be 'backbone' or 'head', got {features!r}")
    head_layers = head_of(classifier).layers
    # The head's last hidden Dense ends the adapter; the rest (dropout, output) is the task layer.
    hidden = [i for i, layer in enumerate(head_layers[:-1]) if isinstance(layer, keras.layers.Dense)]
    if not hidden:
        raise ValueError("features='head' needs an mlp head (model.head: mlp) to adapt")
    for layer in head_layers[: hidden[-1] + 1]:
        representation = layer(representation)
    return representation


def domain_head_multipliers(wrapper, multiplier: float) -> dict:
    """`layer/variable` key → `multiplier` for every variable of `wrapper`'s domain head."""
    from tltf.models.anatomy import variable_key

    return {variable_key(v): float(multiplier) for v in wrapper.domain_head.trainable_variables}
