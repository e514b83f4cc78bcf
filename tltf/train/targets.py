"""What a phase fits: the full model, or the head on cached features, with their datasets.

A fit target gives the trainer a Keras model to compile and fit and the
datasets to fit it on. Adaptation methods add their own targets
(`tltf.adapt.plan`); the trainer treats them all alike.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tltf.log import logger


class LabelledData:
    """Batched `tf.data` pipelines over the labelled train and val splits.

    Args:
        splits: the loaded `tltf.data.ImageSplits`.
        task: the `tltf.task.Task`.
        batch_size: the (global) batch size.
        augmenter: from `tltf.data.pipeline.build_augmenter`, or None.
        sample_weights: per-training-image weights (class weights), or None.
        seed: the shuffle seed.
    """

    def __init__(self, splits, task, batch_size: int, augmenter=None, sample_weights=None, seed: int = 0):
        self.splits = splits
        self.task = task
        self.batch_size = batch_size
        self.augmenter = augmenter
        self.sample_weights = sample_weights
        self.seed = seed

    def datasets(self, train_inputs: Optional[np.ndarray] = None, val_inputs: Optional[np.ndarray] = None):
        """`(train, val)` datasets of images, or of the given inputs (features: never augmented)."""
        from tltf.data.pipeline import make_dataset

        train = self.splits.train
        on_images = train_inputs is None
        train_ds = make_dataset(train.images if on_images else train_inputs, train.labels, self.task,
                                self.batch_size, training=True, augmenter=self.augmenter if on_images else None,
                                sample_weights=self.sample_weights, seed=self.seed)
        return train_ds, self.val_dataset(val_inputs)

    def val_dataset(self, inputs: Optional[np.ndarray] = None):
        """The validation dataset, of images or of the given inputs."""
        from tltf.data.pipeline import make_dataset

        val = self.splits.val
        return make_dataset(val.images if inputs is None else inputs, val.labels, self.task, self.batch_size)


class FullModel:
    """Fits the whole classifier on images; the backbone runs (frozen or not) at every step."""

    caches_features = False
    steps_per_execution = 1
    cached = ""  # what is computed once, for the plan's "feature cache" column ("" nothing)

    def __init__(self, model, task, data: LabelledData):
        self.model = model
        self.task = task
        self.data = data

    def compile(self, optimizer, jit_compile="auto", steps_per_execution=None) -> None:
        """(Re)compiles: Keras bakes the trainable variables into the train function. `steps_per_execution`:
        default the target's own (1 where a callback must see every step, as the learning-rate finder does)."""
        self.model.compile(optimizer=optimizer, loss=self.task.loss(), metrics=self.task.metrics(),
                           jit_compile=jit_compile, steps_per_execution=steps_per_execution or self.steps_per_execution)

    def datasets(self):
        return self.data.datasets()


class HeadOnFeatures(FullModel):
    """Fits the head alone on backbone features computed once: a frozen backbone on unaugmented images
    gives the same features every epoch.

    The head is wrapped in its own model rather than compiled itself: a compiled
    nested layer would carry the optimizer into the full model's `.keras` file twice.

    A step of a head on features takes well under a millisecond, less than Keras' per-step overhead, so
    several steps run in one call (`steps_per_execution`); the batch callbacks then see every that many steps.

    Args:
        model: the full classifier (backbone and head).
        task: the `tltf.task.Task`.
        data: the `LabelledData` whose images give the features.
        verbose: the feature extraction's progress bar.
        steps_per_execution: training steps per call into TensorFlow (1 when the training state is saved
            every N steps: the resume counts single steps).
    """

    caches_features = True
    cached = "yes"

    def __init__(self, model, task, data: LabelledData, verbose: int = 2, steps_per_execution: int = 1):
        import keras

        from tltf.models.anatomy import head_of

        super().__init__(model, task, data)
        self.classifier = model
        self.verbose = verbose
        head = head_of(model)
        features = keras.Input(head.input_shape[1:], name="features")
        self.model = keras.Model(features, head(features), name="head_on_features")
        self.steps_per_execution = steps_per_execution
        self._features = None

    def datasets(self):
        if self._features is None:
            from tltf.train.features import extract_features

            logger.info("computing backbone features once (the backbone is frozen and images are not augmented)")
            batch_size = self.data.batch_size
            splits = self.data.splits
            self._features = extract_features(self.classifier, splits.train.images, splits.val.images,
                                              batch_size=batch_size, verbose=self.verbose)
        return self.data.datasets(*self._features)
