"""L2-SP: regularising fine-tuned weights toward their pretrained values (Li, Grandvalet & Davoine, 2018)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="tltf")
class L2SP(keras.regularizers.Regularizer):
    """`strength/2 · ‖w − w₀‖²`: an L2 penalty toward a starting point `w₀` (toward 0 without one).

    Attached to a variable (`variable.regularizer = L2SP(0.01, variable.numpy())`),
    Keras adds it to the loss in any `model.fit` whenever that variable trains.
    `w₀` is kept as a non-trainable variable (created in the current
    distribution scope) next to the penalised one.

    Example:
        for v in backbone.trainable_weights:
            v.regularizer = L2SP(0.01, reference=v.numpy())

    Args:
        strength: α (or β): the penalty's weight; the gradient is `strength · (w − w₀)`.
        reference: `w₀`, an array of the variable's shape, or None for a plain L2 penalty.
    """

    def __init__(self, strength: float, reference=None):
        self.strength = float(strength)
        self.reference = None
        if reference is not None:
            self.reference = keras.Variable(np.asarray(reference, dtype=np.float32), trainable=False,
                                            name="l2_sp_reference")

    def __call__(self, x):
        x = ops.cast(x, "float32")
        difference = x if self.reference is None else x - self.reference
        return 0.5 * self.strength * ops.sum(ops.square(difference))

    def get_config(self):
        # w₀ is not part of a config: a regulariser attached after building is not saved with the model.
        return {"strength": self.strength}


@dataclasses.dataclass
class L2SPSummary:
    """What `apply_l2_sp` penalised: parameters toward their start (alpha) and toward zero (beta)."""

    alpha: float
    beta: float
    toward_start: int
    toward_zero: int

    def text(self) -> str:
        return (f"L2-SP: alpha {self.alpha:g} pulls {self.toward_start:,} pretrained backbone parameters toward their "
                f"starting values, beta {self.beta:g} pulls {self.toward_zero:,} new parameters (head, LoRA "
                f"adapters) toward zero")


def apply_l2_sp(model, alpha: float, beta: float) -> L2SPSummary:
    """Attaches L2-SP to a tltf classifier: `alpha` on the backbone's parameters toward their current (pretrained)
    values, `beta` on the head's and any LoRA adapters' toward zero. Call it before training (and before a run's
    saved state is restored, so `w₀` is the pretrained start)."""
    from tltf.models.anatomy import backbone_of, head_of, leaf_layers, parameters
    from tltf.models.lora import adapters_of

    start, zero = 0, 0
    for layer in leaf_layers(backbone_of(model)):
        adapters = adapters_of(layer)
        for variable in parameters(layer):
            if any(variable is a for a in adapters):
                variable.regularizer, zero = L2SP(beta), zero + _size(variable)
            else:
                variable.regularizer, start = L2SP(alpha, variable.numpy()), start + _size(variable)
    for layer in leaf_layers(head_of(model)):
        for variable in parameters(layer):
            variable.regularizer, zero = L2SP(beta), zero + _size(variable)
    return L2SPSummary(alpha, beta, start, zero)


def _size(variable) -> int:
    return int(np.prod(variable.shape))
