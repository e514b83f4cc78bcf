"""What every adaptation wrapper shares: the classifier inside, its task loss and metrics, validation."""

from __future__ import annotations

import keras


class AdaptationModel(keras.Model):
    """Base of the adaptation wrappers: fits a tltf classifier on source batches plus unlabelled target batches.

    Training batches are `((source_images, source_labels), target_images)`, so
    a zipped `tf.data.Dataset` feeds `fit` directly; validation batches are
    ordinary `(images, labels)` from the source. Calling the wrapper calls the
    classifier, and the classifier (task path only) is what gets saved and
    exported.

    One `train_step` serves every method: the loss is the task loss on the
    source plus what the subclass's `adaptation_loss` adds for the whole
    batch; the subclass also says which metrics it logs (`metrics`) and how
    its own trackers are updated (`track`).

    Args:
        classifier: a model from `tltf.build_model`.
    """

    def __init__(self, classifier, **kwargs):
        super().__init__(**kwargs)
        from tltf.task import Task

        self.classifier = classifier
        task = Task.of_model(classifier)
        self.num_classes = task.num_classes
        self.task_loss = task.loss()
        self.task_auc = task.auc()
        self.loss_tracker = keras.metrics.Mean(name="loss")

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    @staticmethod
    def source_and_target(data):
        """One batch of images (source first, then target), the source labels and the source count."""
        import tensorflow as tf

        (source, labels), target = data
        images = tf.concat([tf.cast(source, tf.float32), tf.cast(target, tf.float32)], axis=0)
        return images, labels, tf.shape(source)[0]

    def adaptation_loss(self, images, count):
        """`(predictions for all images, the added loss, what `track` needs)` for a batch of `count` source
        images followed by target images. Runs inside the gradient tape."""
        raise NotImplementedError

    def track(self, **tracked) -> None:
        """Updates the subclass's own metrics from what `adaptation_loss` returned."""

    def train_step(self, data):
        import tensorflow as tf

        images, labels, count = self.source_and_target(data)
        with tf.GradientTape() as tape:
            predictions, added_loss, tracked = self.adaptation_loss(images, count)
            loss = self.task_loss(labels, predictions[:count]) + added_loss
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        self.task_auc.update_state(labels, predictions[:count])
        self.track(**tracked)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        images, labels = data[0], data[1]
        predictions = self.classifier(images, training=False)
        self.loss_tracker.update_state(self.task_loss(labels, predictions))
        self.task_auc.update_state(labels, predictions)
        return {"loss": self.loss_tracker.result(), "auc": self.task_auc.result()}

    def get_config(self):
        return {**super().get_config(), "classifier": keras.saving.serialize_keras_object(self.classifier)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


def class_probabilities(predictions):
    """`[B,C]` class probabilities from a tltf classifier's output (binary: `[1 − p, p]` from its `[B,1]`)."""
    from keras import ops

    predictions = ops.cast(predictions, "float32")
    if predictions.shape[-1] == 1:
        return ops.concatenate([1.0 - predictions, predictions], axis=-1)
    return predictions


def prediction_entropy(probabilities):
    """Per-example entropy (nats) of `[B,C]` class probabilities."""
    from keras import ops

    return -ops.sum(probabilities * ops.log(ops.clip(probabilities, 1e-7, 1.0)), axis=-1)
