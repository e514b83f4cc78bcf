import keras
import numpy as np

from tltf.layers import BatchNormPolicy
from tltf.models.anatomy import leaf_layers, parameters


class IntentViolation(RuntimeError):
    """Training did not do what the plan declared (a bug, in tltf or in the model)."""


def _batch_norm_modes(model) -> dict:
    """BatchNormalization layer → "frozen" (inference mode) or "train", as declared."""
    modes = {}

    def visit(layer, frozen_policy):
        if isinstance(layer, BatchNormPolicy):
            frozen_policy = frozen_policy or layer.mode == "frozen"
            children = [layer.layer]
        else:
            children = getattr(layer, "layers", [])
        if isinstance(layer, keras.layers.BatchNormalization):
            modes[layer] = "frozen" if frozen_policy or not layer.trainable else "train"
        for child in children:
            visit(child, frozen_policy)

    visit(model, False)
    return modes


class IntentCheck(keras.callbacks.Callback):
    """Checks, at the first step of every `fit`, that training does what was declared.

    After that step: every parameter of a frozen layer is bit-identical, the
    moving statistics of BatchNorm declared frozen (by `BatchNormPolicy` or
    because its layer is frozen) are unchanged, and those of BatchNorm
    declared to train have moved. A violation raises `IntentViolation`
    naming the layer. The cost is one copy of the frozen weights per phase.

    Example:
        model.fit(ds, epochs=3, callbacks=[tltf.callbacks.IntentCheck()])

    Args:
        model: the model to inspect; default the one being fitted. tltf
            passes the full model when it fits the head on cached features.
    """

    def __init__(self, model=None):
        super().__init__()
        self.inspected = model
        self.checks = 0

    def on_train_begin(self, logs=None):
        self._armed = True

    def on_train_batch_begin(self, batch, logs=None):
        if not self._armed:
            return
        model = self.inspected or self.model
        self._frozen = [(layer, [(v, np.array(v.numpy())) for v in parameters(layer)])
                        for layer in leaf_layers(model) if not layer.trainable and parameters(layer)]
        # The backbone only runs in this fit if it is part of the fitted model.
        runs_backbone = self.inspected is None or self.inspected is self.model
        self._batch_norms = [(bn, mode, np.array(bn.moving_mean.numpy()))
                             for bn, mode in _batch_norm_modes(model).items() if mode == "frozen" or runs_backbone]

    def on_train_batch_end(self, batch, logs=None):
        if not self._armed:
            return
        self._armed = False
        for layer, saved in self._frozen:
            for variable, before in saved:
                if not np.array_equal(before, variable.numpy()):
                    raise IntentViolation(f"intent check: layer {layer.name!r} is frozen but its {variable.name} "
                                          "changed in the first training step")
        for bn, mode, before in self._batch_norms:
            moved = not np.array_equal(before, bn.moving_mean.numpy())
            if mode == "frozen" and moved:
                raise IntentViolation(f"intent check: BatchNorm {bn.name!r} is declared frozen (inference mode) "
                                      "but its moving mean changed in the first training step")
            if mode == "train" and not moved and bn.momentum < 1:
                raise IntentViolation(f"intent check: BatchNorm {bn.name!r} is declared to train but its "
                                      "moving mean did not change in the first training step")
        self.checks += 1
        self._frozen = self._batch_norms = None
