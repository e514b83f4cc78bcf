"""A calibration folded into a classifier's output layer, so `model.keras` and its SavedModel are calibrated.

Temperature and Platt scaling are affine maps of the logits; the logits of a
classifier ending in `Dense(activation=sigmoid|softmax)` are themselves
affine in that layer's kernel and bias. Scaling the kernel and bias computes
the calibrated probabilities with no extra layer, nothing new to serialise,
and nothing for TF Serving to learn.
"""

from __future__ import annotations

from tltf.models.anatomy import head_of, leaf_layers

_ACTIVATIONS = ("sigmoid", "softmax")


def output_layer_of(model):
    """The classifier's last Dense layer, whose activation (sigmoid or softmax) makes the probabilities.

    Raises:
        ValueError: the model does not end in such a layer.
    """
    import keras

    last = list(leaf_layers(head_of(model)))[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if not isinstance(last, keras.layers.Dense) or activation not in _ACTIVATIONS:
        raise ValueError(f"model {model.name!r} does not end in a Dense layer with a sigmoid or softmax "
                         f"(its last layer is {last.name!r}, {type(last).__name__}); calibration scales that "
                         "layer's logits")
    if getattr(last, "lora_enabled", False):
        raise ValueError(f"{last.name!r} has LoRA adapters; merge them before calibrating")
    return last


def fold_calibration(model, calibration) -> None:
    """Scales the output layer's kernel and bias so the model outputs `calibration.apply(its scores)`.

    Example:
        calibration = fit_calibration(val_labels, val_scores, "temperature")
        fold_calibration(model, calibration)   # model.predict now gives calibrated probabilities

    Args:
        model: a classifier ending in `Dense(activation=sigmoid|softmax)`.
        calibration: a `tltf.evaluate.calibration.Calibration`.
    """
    layer = output_layer_of(model)
    if layer.bias is None and calibration.shift:  # before anything is scaled: a refused fold changes nothing
        raise ValueError(f"{layer.name!r} has no bias to hold Platt scaling's intercept; use temperature")
    layer.kernel.assign(layer.kernel * calibration.scale)
    if layer.bias is not None:
        layer.bias.assign(layer.bias * calibration.scale + calibration.shift)

