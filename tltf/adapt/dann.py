import keras
from keras import ops

from tltf.layers import GradientReversal


@keras.saving.register_keras_serializable(package="tltf")
class DomainAdversarialModel(keras.Model):
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

    Example:
        dann = DomainAdversarialModel(model, hidden_units=[256], dropout=0.5)
        dann.compile(optimizer=keras.optimizers.AdamW(1e-4))
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
        super().__init__(**kwargs)
        from tltf.models.anatomy import backbone_of, head_of
        from tltf.task import Task

        self.classifier = classifier
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.dropout = float(dropout)
        self.features = features
        inputs = classifier.input
        representation = backbone_of(classifier).output
        head_layers = head_of(classifier).layers
        # The head's last hidden Dense ends the adapter; the rest (dropout, output) is the task layer.
        hidden = [i for i, layer in enumerate(head_layers[:-1]) if isinstance(layer, keras.layers.Dense)]
        if features == "head":
            if not hidden:
                raise ValueError("features='head' needs an mlp head (model.head: mlp) to adapt")
            for layer in head_layers[: hidden[-1] + 1]:
                representation = layer(representation)
        elif features != "backbone":
            raise ValueError(f"features must be 'backbone' or 'head', got {features!r}")
        # One forward pass gives both the task output and the features.
        self.twin = keras.Model(inputs, [classifier.output, representation], name="task_and_features")
        feature_dim = representation.shape[-1]
        self.reversal = GradientReversal(0.0, name="gradient_reversal")
        self.reversal.build((None, feature_dim))  # λ exists before the first step, for the schedule
        layers = [keras.Input((feature_dim,))]
        for units in self.hidden_units:
            layers += [keras.layers.Dropout(self.dropout), keras.layers.Dense(units, activation="relu")]
        layers.append(keras.layers.Dense(1, dtype="float32"))  # domain logit: target = 1
        self.domain_head = keras.Sequential(layers, name="domain_head")
        task = Task.of_model(classifier)
        self.task_loss = task.loss()
        self.domain_loss = keras.losses.BinaryCrossentropy(from_logits=True)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
        self.task_auc = task.auc()
        self.domain_accuracy = keras.metrics.BinaryAccuracy(name="domain_accuracy", threshold=0.0)
        self.lambda_tracker = keras.metrics.Mean(name="lambda")
        # Everything above is built; saying so lets a loaded model rebuild its optimizer and restore its state.
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.domain_loss_tracker, self.task_auc, self.domain_accuracy, self.lambda_tracker]

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def train_step(self, data):
        import tensorflow as tf

        (source, labels), target = data
        count = tf.shape(source)[0]
        images = tf.concat([tf.cast(source, tf.float32), tf.cast(target, tf.float32)], axis=0)
        domains = tf.concat([tf.zeros((count, 1)), tf.ones((tf.shape(target)[0], 1))], axis=0)
        with tf.GradientTape() as tape:
            predictions, features = self.twin(images, training=True)
            task_loss = self.task_loss(labels, predictions[:count])
            domain_logits = self.domain_head(self.reversal(features), training=True)
            domain_loss = self.domain_loss(domains, domain_logits)
            loss = task_loss + domain_loss
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        self.domain_loss_tracker.update_state(domain_loss)
        self.task_auc.update_state(labels, predictions[:count])
        self.domain_accuracy.update_state(domains, domain_logits)
        self.lambda_tracker.update_state(ops.convert_to_tensor(self.reversal.lambda_))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        images, labels = data[0], data[1]
        predictions = self.classifier(images, training=False)
        self.loss_tracker.update_state(self.task_loss(labels, predictions))
        self.task_auc.update_state(labels, predictions)
        return {"loss": self.loss_tracker.result(), "auc": self.task_auc.result()}

    def get_config(self):
        return {**super().get_config(), "classifier": keras.saving.serialize_keras_object(self.classifier),
                "hidden_units": list(self.hidden_units), "dropout": self.dropout, "features": self.features}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)
