"""Classification heads: pooled features → class probabilities."""

from __future__ import annotations


def build_head(feature_dim: int, task, kind: str = "linear", hidden_units=(256,), dropout: float = 0.2):
    """A `keras.Sequential` head named `"head"`, ending in the task's output layer.

    A binary task gets one logit with a sigmoid; a multiclass task gets a
    softmax over its classes (`tltf.task.Task.output_layer`).

    Example:
        head = build_head(1280, Task(["normal", "pneumonia"]), kind="mlp", hidden_units=[128], dropout=0.3)

    Args:
        feature_dim: size of the pooled backbone features.
        task: the `tltf.task.Task`.
        kind: `"linear"` (dropout → dense) or `"mlp"` (hidden ReLU layers).
        hidden_units: sizes of the mlp's hidden layers.
        dropout: dropout rate before each dense layer.
    """
    import keras

    layers = [keras.Input((feature_dim,), name="features")]
    if kind == "mlp":
        for i, units in enumerate(hidden_units):
            if dropout:
                layers.append(keras.layers.Dropout(dropout, name=f"head_dropout_{i}"))
            layers.append(keras.layers.Dense(units, activation="relu", name=f"head_hidden_{i}"))
    elif kind != "linear":
        raise ValueError(f"head kind must be 'linear' or 'mlp', got {kind!r}")
    if dropout:
        layers.append(keras.layers.Dropout(dropout, name="head_dropout"))
    layers.append(task.output_layer())
    return keras.Sequential(layers, name="head")
