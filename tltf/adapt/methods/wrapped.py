"""What the methods that fit a wrapper around the classifier share (dann, cdan, mcc): every phase fits the
wrapper on source batches zipped with unlabelled target batches (not a method itself)."""

from __future__ import annotations

import dataclasses

from tltf.adapt.methods.selected import SelectedOnTarget, with_phase_callbacks


class SourceAndTargetBatches:
    """Fits an adaptation wrapper: source batches with labels zipped with unlabelled target batches.

    Args:
        wrapper: the adaptation model (`tltf.adapt.AdaptationModel`).
        data: the source's `tltf.train.targets.LabelledData`.
        target_images: uint8 `[N,S,S,3]` target-domain images (no labels).
    """

    caches_features = False
    cached = ""

    def __init__(self, wrapper, data, target_images):
        self.model = wrapper
        self.data = data
        self.target_images = target_images

    def compile(self, optimizer, jit_compile="auto", steps_per_execution=None) -> None:
        self.model.compile(optimizer=optimizer, jit_compile=jit_compile, steps_per_execution=steps_per_execution or 1)

    def datasets(self):
        import tensorflow as tf

        from tltf.data.pipeline import make_unlabelled_dataset

        train_ds, val_ds = self.data.datasets()
        target_ds = make_unlabelled_dataset(self.target_images, self.data.batch_size, augmenter=self.data.augmenter,
                                            seed=self.data.seed)
        return tf.data.Dataset.zip((train_ds, target_ds)), val_ds


class WrappedMethod(SelectedOnTarget):
    """A method that trains a wrapper model (`tltf.adapt.AdaptationModel`) around the classifier.

    Subclasses build it (`wrapper`) and may add callbacks after the selection criteria and change the plan
    around the wrapper (`around_wrapper`).
    """

    def wrapper(self, model, adaptation, seed: int):
        """The adaptation model around `model`."""
        raise NotImplementedError

    def fit_toward_target(self, plan, context, criteria):
        wrapper = self.wrapper(plan.model, context.adaptation, context.data.seed)
        target = SourceAndTargetBatches(wrapper, context.data, context.target_domain.images)
        plan = dataclasses.replace(plan, fitted_model=wrapper)
        plan = with_phase_callbacks(plan, (), fit_target=target)
        return self.around_wrapper(plan, context, wrapper, criteria)

    def around_wrapper(self, plan, context, wrapper, criteria):
        """`plan` with the criteria first among each phase's callbacks (here: nothing more)."""
        return with_phase_callbacks(plan, (criteria,))
