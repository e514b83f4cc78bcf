"""Progressive resizing: the last phase's first epochs fit the classifier on images shrunk to a smaller size.

The classifier keeps its one input size. The phase fits a wrapper that shares its layers and puts a
`tltf.layers.InputResolution` in front; `tltf.callbacks.ProgressiveResizing` sets the size epoch by epoch, and
validation, the best checkpoint and the delivered model see the full size. Images are decoded and augmented at
the full size as before and shrunk inside the step, so nothing in the data pipeline changes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tltf.errors import RecipeError
from tltf.train.targets import FullModel


class AtSmallerSize(FullModel):
    """Fits the classifier through an `InputResolution` layer, on the same images and datasets as `FullModel`.

    Example:
        target = AtSmallerSize(model, task, data)
        target.model.fit(...)   # with tltf.callbacks.ProgressiveResizing among the callbacks

    Args:
        model: the classifier (built at its one input size; it must accept other sizes).
        task: the `tltf.task.Task`.
        data: the `LabelledData` it fits on.
    """

    cached = ""

    def __init__(self, model, task, data):
        import keras

        from tltf.layers import InputResolution

        super().__init__(model, task, data)
        full_size = int(model.input_shape[1])
        images = keras.Input(model.input_shape[1:], name="image")
        # float32 whatever the compute precision, as the pixels going into the classifier's preprocessing.
        self.resolution = InputResolution(full_size, name="input_resolution", dtype="float32")
        self.model = keras.Model(images, model(self.resolution(images)), name="progressive_resizing")

    def compile(self, optimizer, jit_compile="auto", steps_per_execution=None) -> None:
        """Compiles without XLA, whatever `jit_compile` says: XLA needs every shape fixed at compile time, and
        the size here is a variable (`train.jit_compile: true` is refused with progressive resizing)."""
        super().compile(optimizer, jit_compile=False, steps_per_execution=steps_per_execution)

    def run_once_at(self, size: int) -> None:
        """Runs one blank image through the wrapper at `size` (a backbone that takes one size only fails)."""
        self.resolution.size.assign(size)
        try:
            self.model.predict_on_batch(np.zeros((1, *self.model.input_shape[1:]), "float32"))
        finally:
            self.resolution.size.assign(self.resolution.full_size)


def _resizable(plan, data, size: int) -> AtSmallerSize:
    """The plan's classifier fitted through an `InputResolution`, checked to run at `size`.

    Raises:
        RecipeError: naming `train.progressive_resizing.size`, when the model cannot run at that size.
    """
    try:
        target = AtSmallerSize(plan.model, plan.task, data)
        target.run_once_at(size)
    except Exception:  # noqa: BLE001 - whatever the backbone raises (TensorFlow's first line says nothing), the
        # recipe key is the fix
        raise RecipeError(f"train.progressive_resizing.size: {plan.model.name} cannot run at {size} px (its backbone "
                          "takes one input size); remove train.progressive_resizing (convolutional backbones "
                          "only)") from None
    return target


def with_progressive_resizing(plan, rule, data):
    """`plan` whose last phase trains its first `rule.small_epochs` epochs at `rule.size` px (a new plan).

    Args:
        plan: the assembled `TrainingPlan` (supervised: its fitted model is its classifier).
        rule: the `tltf.train.spec.ResizingRule`, or None (the plan is returned as it is).
        data: the `LabelledData` the phase fits on.
    """
    from tltf.train.callbacks import ProgressiveResizing

    last = plan.phases[-1] if plan.phases else None
    if rule is None or last is None or not rule.small_epochs(last.phase.epochs):
        return plan
    target = _resizable(plan, data, rule.size)
    first_epoch = last.first_step // plan.steps_per_epoch
    resizing = ProgressiveResizing(rule.size, first_epoch + rule.small_epochs(last.phase.epochs))
    note = last.feature_cache_note or "progressive resizing changes the input size"
    return dataclasses.replace(plan, phases=(*plan.phases[:-1], dataclasses.replace(
        last, fit_target=target, callbacks=(resizing, *last.callbacks), feature_cache_note=note)))
