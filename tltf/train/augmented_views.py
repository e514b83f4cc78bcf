"""Caches with augmentation on: what stays frozen, computed once for K augmented views of every image.

With augmentation, frozen blocks give new outputs every epoch, so the exact caches do not apply. Computing K
augmented views once and training on one of them per image per epoch is an approximation: what is trained sees K
versions of each image instead of a new one every epoch. It trades that for K passes of the frozen blocks instead
of one per epoch. Opt in with `train.augmented_views: K`; it serves a frozen backbone (`HeadOnAugmentedViews`) and
the lowest blocks a gradual phase never unfreezes (`AboveFrozenPrefixOnViews`).
"""

from __future__ import annotations

import numpy as np

from tltf.log import logger
from tltf.train.frozen_prefix import AboveFrozenPrefix, prefix_extractor
from tltf.train.targets import HeadOnFeatures

# Refused above this: the views live in memory (and in the tf.data graph) as float32.
MAX_VIEW_BYTES = 2 * 1024**3


class OnAugmentedViews:
    """The datasets of a fit target that trains on frozen blocks' outputs for `views` augmented views.

    A mixin before a cached fit target (`HeadOnFeatures`, `AboveFrozenPrefix`): `extractor()` says what runs
    once (the frozen blocks), `view_outputs` keeps its `(train [N, views, ...], val)` outputs, and each epoch
    draws one view per image (`one_view_per_epoch`).
    """

    views: int
    make_augmenter = None
    view_outputs = None
    computing = ""  # the log line when the views are computed

    def extractor(self):
        raise NotImplementedError

    def _use_views(self, views: int, make_augmenter, frozen: str) -> None:
        """Keeps the views' settings; `frozen`: what runs once, for the plan and the log."""
        self.views, self.make_augmenter = views, make_augmenter
        self.cached = f"{views} augmented views (an approximation)"
        self.computing = (f"computing {frozen} for {views} augmented views of every training image once (an "
                          "approximation of augmenting every epoch)")

    def datasets(self):
        if self.view_outputs is None:
            logger.info(self.computing)
            self.view_outputs = views_through(self.extractor(), self.data, self.views, self.make_augmenter,
                                              self.verbose)
        train, val = self.view_outputs
        return one_view_per_epoch(train, self.data), self.data.val_dataset(val)


class HeadOnAugmentedViews(OnAugmentedViews, HeadOnFeatures):
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
        self._use_views(views, make_augmenter, "the frozen backbone's features")

    def extractor(self):
        from tltf.models.anatomy import feature_extractor

        return feature_extractor(self.classifier)


class AboveFrozenPrefixOnViews(OnAugmentedViews, AboveFrozenPrefix):
    """Fits the backbone above its frozen prefix, and the head, on the prefix's output for `views` augmented
    copies of each training image, computed once.

    As `HeadOnAugmentedViews`, one block lower: view k is the training images through a fresh augmenter seeded
    `seed + k`, validation is unaugmented, and each epoch every image contributes one of its views, drawn at
    random. Exactness is given up only in the augmentation: the blocks above train on the views as they would
    on images augmented that way.

    Example:
        target = AboveFrozenPrefixOnViews(model, task, data, cut, views=4, make_augmenter=augmenter_for_seed)

    Args:
        model: the full classifier.
        task: the `tltf.task.Task`.
        data: the `LabelledData` whose images give the prefix's output.
        cut: the `tltf.train.frozen_prefix.PrefixCut`.
        views: how many augmented views of each training image.
        make_augmenter: `fn(seed) -> augmenter`; it must not mix labels across images.
        verbose: the extraction's progress bar.
    """

    def __init__(self, model, task, data, cut, views: int, make_augmenter, verbose: int = 2):
        super().__init__(model, task, data, cut, verbose)
        self._use_views(views, make_augmenter, f"the output of the frozen blocks {cut.text()}")
        self.cached = f"{cut.text()} (frozen all phase), {self.cached}"

    def extractor(self):
        return prefix_extractor(self.classifier, self.cut)


def views_through(extractor, data, views: int, make_augmenter, verbose: int = 2) -> tuple:
    """`(train, val)`: `extractor`'s outputs (float32) for `views` augmented views of every training image,
    stacked `[N, views, ...]`, and for the unaugmented validation images."""
    import tensorflow as tf

    from tltf.data.pipeline import images_in_batches

    splits, batch_size = data.splits, data.batch_size
    outputs = []
    for view in range(views):
        augmenter = make_augmenter(data.seed + view)
        batches = images_in_batches(splits.train.images, batch_size).map(
            lambda x, augment=augmenter: augment(x, tf.zeros((tf.shape(x)[0], 1)))[0])
        outputs.append(extractor.predict(batches, verbose=verbose).astype("float32"))
    val = extractor.predict(images_in_batches(splits.val.images, batch_size), verbose=verbose)
    return np.stack(outputs, axis=1), val.astype("float32")


def one_view_per_epoch(inputs: np.ndarray, data):
    """Shuffled training batches of one of each image's views (`inputs`: `[N, views, ...]`), drawn anew every
    epoch from a seeded stream, so a resumed run draws as the uninterrupted one."""
    import tensorflow as tf

    views = inputs.shape[1]
    targets = data.task.encode(data.splits.train.labels)
    weights = () if data.sample_weights is None else (data.sample_weights.astype(np.float32),)
    ds = tf.data.Dataset.from_tensor_slices((inputs, targets, *weights))
    ds = ds.shuffle(len(targets), seed=data.seed, reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed=data.seed, rerandomize_each_iteration=True)

    def one_view(element, draw):
        x, *rest = element
        return (tf.gather(x, draw % views), *rest)

    ds = tf.data.Dataset.zip((ds, draws)).map(one_view, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(data.batch_size).prefetch(tf.data.AUTOTUNE)


def view_bytes(images: int, views: int, width: int) -> int:
    """Memory the views of `images` take as float32 features of `width`."""
    return images * views * width * 4
