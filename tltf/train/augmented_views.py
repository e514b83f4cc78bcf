"""A feature cache with augmentation on: a frozen backbone's features of K augmented views of every image.

With augmentation, a frozen backbone gives new features every epoch, so the exact cache does not apply. Computing
K augmented views once and training the head on one of them per image per epoch is an approximation: the head
sees K versions of each image instead of a new one every epoch. It trades that for K passes of the backbone
instead of one per epoch. Opt in with `train.augmented_views: K`.
"""

from __future__ import annotations

import numpy as np

from tltf.log import logger
from tltf.train.targets import HeadOnFeatures

# Refused above this: the views live in memory (and in the tf.data graph) as float32.
MAX_VIEW_BYTES = 2 * 1024**3


class HeadOnAugmentedViews(HeadOnFeatures):
    """Fits the head on a frozen backbone's features of `views` augmented copies of each training image.

    View k is the training images through a fresh augmenter seeded `seed + k` (so a resumed run computes the
    same views); validation features are of the unaugmented images, as always. Each epoch every image
    contributes one of its views, drawn at random (seeded; the draw changes from epoch to epoch).

    Example:
        target = HeadOnAugmentedViews(model, task, data, views=4, make_augmenter=functools.partial(
            build_augmenter, recipe.augment))
        train_ds, val_ds = target.datasets()   # 4 backbone passes over train, 1 over val, then heads only

    Args:
        model: the full classifier (backbone and head).
        task: the `tltf.task.Task`.
        data: the `LabelledData` whose images give the features.
        views: how many augmented views of each training image.
        make_augmenter: `fn(seed) -> augmenter` (`tltf.data.pipeline.build_augmenter` with the recipe's
            `augment`); it must not mix labels across images.
        verbose: the extraction's progress bar.
        steps_per_execution: training steps per call into TensorFlow.
    """

    def __init__(self, model, task, data, views: int, make_augmenter, verbose: int = 2,
                 steps_per_execution: int = 1):
        super().__init__(model, task, data, verbose, steps_per_execution)
        self.views = views
        self.make_augmenter = make_augmenter
        self.cached = f"{views} augmented views (an approximation)"

    def datasets(self):
        if self._features is None:
            self._features = self._extract()
        return self._train_dataset(self._features[0]), self.data.datasets(*self._features)[1]

    def _extract(self) -> tuple:
        import tensorflow as tf

        from tltf.data.pipeline import images_in_batches
        from tltf.models.anatomy import feature_extractor

        logger.info(f"computing backbone features of {self.views} augmented views of every training image once "
                    f"(the backbone is frozen; an approximation of augmenting every epoch)")
        splits, batch_size = self.data.splits, self.data.batch_size
        extractor = feature_extractor(self.classifier)  # one extractor: its inference function is traced once
        views = []
        for view in range(self.views):
            augmenter = self.make_augmenter(self.data.seed + view)
            batches = images_in_batches(splits.train.images, batch_size).map(
                lambda x, augment=augmenter: augment(x, tf.zeros((tf.shape(x)[0], 1)))[0])
            views.append(extractor.predict(batches, verbose=self.verbose).astype("float32"))
        val = extractor.predict(images_in_batches(splits.val.images, batch_size), verbose=self.verbose)
        return np.stack(views, axis=1), val.astype("float32")  # train [N, views, D]

    def _train_dataset(self, features: np.ndarray):
        """Shuffled batches of one view per image, the view drawn anew every epoch."""
        import tensorflow as tf

        data = self.data
        targets = self.task.encode(data.splits.train.labels)
        weights = () if data.sample_weights is None else (data.sample_weights.astype(np.float32),)
        ds = tf.data.Dataset.from_tensor_slices((features, targets, *weights))
        ds = ds.shuffle(len(targets), seed=data.seed, reshuffle_each_iteration=True)
        draws = tf.data.Dataset.random(seed=data.seed, rerandomize_each_iteration=True)

        def one_view(element, draw):
            x, *rest = element
            return (tf.gather(x, draw % self.views), *rest)

        ds = tf.data.Dataset.zip((ds, draws)).map(one_view, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(data.batch_size).prefetch(tf.data.AUTOTUNE)


def view_bytes(images: int, views: int, width: int) -> int:
    """Memory the views of `images` take as float32 features of `width`."""
    return images * views * width * 4
