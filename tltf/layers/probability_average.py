import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tltf")
class ProbabilityAverage(keras.layers.Layer):
    """The weighted mean of several classifiers' probabilities: an ensemble's output.

    Averaging probabilities (not logits) keeps each member's calibration and
    works for sigmoid and softmax outputs alike. The weights are fixed numbers,
    not trained: they are chosen before the layer is built (equal, or fitted on
    validation by `tltf.ensemble.fit_member_weights`).

    Example:
        probabilities = ProbabilityAverage([0.5, 0.5])([member_a(images), member_b(images)])

    Args:
        weights: one non-negative weight per input; normalised to sum to 1. Default: equal weights.
    """

    def __init__(self, weights=None, **kwargs):
        super().__init__(**kwargs)
        if weights is not None:
            weights = [float(w) for w in weights]
            if min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.weights_given = weights

    def call(self, inputs):
        count = len(inputs)
        weights = self.weights_given or [1.0] * count
        if len(weights) != count:
            raise ValueError(f"{len(weights)} weights for {count} inputs")
        total = sum(weights)
        # float32 whatever the members computed in: the mean of probabilities is the model's output.
        return sum(ops.cast(x, "float32") * (w / total) for x, w in zip(inputs, weights))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weights": self.weights_given}
