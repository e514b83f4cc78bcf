"""Test-time augmentation folded into the model: the delivered model averages an image's views."""

from __future__ import annotations

# recipe word → the FlipImages direction of that view
VIEWS = {"flip": "horizontal", "vflip": "vertical"}


def with_test_time_augmentation(model, views):
    """A Keras model whose output is the mean of `model`'s probabilities over the image and its `views`.

    The views are layers inside the model, so `model.keras`, the exported SavedModel and TF Serving all
    compute the average; nothing outside the model has to remember to do it.

    Example:
        delivered = with_test_time_augmentation(model, ["flip"])   # (p(x) + p(mirror of x)) / 2

    Args:
        model: a classifier taking `[N,S,S,3]` pixels (any Keras model with one image input).
        views: `flip` (left–right mirror) and/or `vflip` (top–bottom); the image itself is always a view.
    """
    import keras

    from tltf.layers import FlipImages, ProbabilityAverage

    if not views:
        return model
    images = keras.Input(model.input.shape[1:], name="image")
    outputs = [model(images)]
    for view in views:
        outputs.append(model(FlipImages(VIEWS[view], name=f"tta_{view}")(images)))
    probabilities = ProbabilityAverage(name="probabilities")(outputs)
    return keras.Model(images, probabilities, name=f"{model.name}_tta")
