"""Minimum class confusion (Jin et al., 2020): the target predictions' class confusion joins the loss."""

from __future__ import annotations

from tltf.adapt.methods.base import register_method
from tltf.adapt.methods.wrapped import WrappedMethod


@register_method
class Mcc(WrappedMethod):
    """Non-adversarial: the classifier is pushed to keep target images of different classes apart
    (`tltf.adapt.MinimumClassConfusionModel`).

    Example:
        adaptation: {method: mcc, target: {source: directory, path: scanner-b/}, mcc: {weight: 1.0}}
    """

    name = "mcc"
    title = "MCC"

    def explain(self, adaptation, image_size: int) -> str:
        return (f"minimum class confusion on the target predictions (weight {adaptation.mcc.weight:g}, "
                f"temperature {adaptation.mcc.temperature:g})")

    def wrapper(self, model, adaptation, seed: int):
        from tltf.adapt.confusion import MinimumClassConfusionModel

        return MinimumClassConfusionModel(model, adaptation.mcc.weight, adaptation.mcc.temperature, name="mcc")
