"""Classification heads: pooled features → class probabilities."""

from __future__ import annotations


def build_head(feature_dim: int, num_classes: int, kind: str = "linear", hidden_units=(256,), dropout: float = 0.2):
    """A `keras.Sequential` head named `"head"`.

    A binary task (`num_classes == 2`) gets one logit with a sigmoid; a
    multiclass task gets a softmax over `num_classes`.

    Example:
        head = build_head(1280, 2, kind="mlp", hidden_units=[128], dropout=0.3)

    Args:
        feature_dim: size of the pooled backbone features.
        num_classes: number of classes (2 means binary).
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
    if num_classes == 2:
        # float32 output: under mixed precision the loss must see full-precision probabilities.
        layers.append(keras.layers.Dense(1, activation="sigmoid", name="logit", dtype="float32"))
    else:
        layers.append(keras.layers.Dense(num_classes, activation="softmax", name="logits", dtype="float32"))
    return keras.Sequential(layers, name="head")
