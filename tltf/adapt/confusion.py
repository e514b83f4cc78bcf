import keras
from keras import ops

from tltf.adapt.base import AdaptationModel, class_probabilities, prediction_entropy


def minimum_class_confusion(predictions, temperature: float = 2.5):
    """Jin et al.'s (2020) class-confusion loss of a batch of target predictions (a scalar; lower is less confused).

    Probabilities are re-tempered (`softmax(log p / T)`), weighted per example
    by `1 + exp(−H)` (certain examples count more), and the class-confusion
    matrix `Cᵀ·W·C` is row-normalised; the loss is its off-diagonal mass over
    the number of classes.

    Args:
        predictions: a tltf classifier's outputs on target images (`[B,1]` binary, `[B,C]` softmax).
        temperature: the rescaling temperature (2.5 in the paper).
    """
    import tensorflow as tf

    probabilities = class_probabilities(predictions)
    tempered = ops.softmax(ops.log(ops.clip(probabilities, 1e-7, 1.0)) / temperature, axis=-1)
    weights = tf.stop_gradient(1.0 + ops.exp(-prediction_entropy(tempered)))
    weights = ops.cast(ops.shape(weights)[0], "float32") * weights / ops.sum(weights)
    confusion = ops.matmul(ops.transpose(tempered * ops.expand_dims(weights, 1)), tempered)
    confusion = confusion / ops.sum(confusion, axis=1, keepdims=True)
    classes = ops.shape(confusion)[0]
    return (ops.sum(confusion) - ops.trace(confusion)) / ops.cast(classes, "float32")


@keras.saving.register_keras_serializable(package="tltf")
class MinimumClassConfusionModel(AdaptationModel):
    """Minimum class confusion (MCC) of a tltf classifier on unlabelled target images, with plain `model.fit`.

    Non-adversarial: the loss is the task loss on the source plus `weight` ×
    `minimum_class_confusion` of the target predictions, which pushes the
    classifier to keep target images of different classes apart without any
    domain classifier. Batches are `((source_images, source_labels),
    target_images)`; source and target go through the classifier in one batch.

    Example:
        mcc = MinimumClassConfusionModel(model, weight=1.0, temperature=2.5)
        mcc.compile(optimizer=keras.optimizers.AdamW(1e-4))
        mcc.fit(tf.data.Dataset.zip((source_ds, target_ds.repeat())), validation_data=val_ds, epochs=10)

    Args:
        classifier: a model from `tltf.build_model`.
        weight: the confusion loss's weight.
        temperature: the probability rescaling temperature.
    """

    def __init__(self, classifier, weight: float = 1.0, temperature: float = 2.5, **kwargs):
        super().__init__(classifier, **kwargs)
        self.weight = float(weight)
        self.temperature = float(temperature)
        self.confusion_tracker = keras.metrics.Mean(name="confusion_loss")
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.confusion_tracker, self.task_auc]

    def adaptation_loss(self, images, count):
        """`weight` × the class confusion of the target predictions."""
        predictions = self.classifier(images, training=True)
        confusion = minimum_class_confusion(predictions[count:], self.temperature)
        return predictions, self.weight * confusion, {"confusion": confusion}

    def track(self, confusion) -> None:
        self.confusion_tracker.update_state(confusion)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "temperature": self.temperature}
