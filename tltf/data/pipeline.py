"""tf.data pipelines: shuffle → batch → augment (train only) → prefetch.

Images stay uint8 until the batch is formed; augmentation runs as Keras-core
preprocessing layers inside a parallel `map`, and `prefetch` keeps it off the
training step's critical path.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tltf.data.image_store import ImageStore


def build_augmenter(augment, seed: int):
    """Returns `fn(images, labels) -> (images, labels)` for the recipe's `augment`, or None.

    Example:
        fn = build_augmenter(recipe.augment, seed=42)
        images, labels = fn(images, labels)  # inside a tf.data map
    """
    import keras

    if not augment.enabled:
        return None
    layers = []
    if augment.flip != "none":
        layers.append(keras.layers.RandomFlip(augment.flip, seed=seed))
    if augment.rotation:
        layers.append(keras.layers.RandomRotation(augment.rotation, fill_mode="reflect", seed=seed + 1))
    if augment.zoom:
        layers.append(keras.layers.RandomZoom(augment.zoom, fill_mode="reflect", seed=seed + 2))
    if augment.translate:
        layers.append(keras.layers.RandomTranslation(augment.translate, augment.translate, fill_mode="reflect",
                                                     seed=seed + 3))
    if augment.contrast:
        layers.append(keras.layers.RandomContrast(augment.contrast, value_range=(0, 255), seed=seed + 4))
    if augment.randaugment:
        layers.append(keras.layers.RandAugment(
            value_range=(0, 255), num_ops=augment.randaugment.num_ops,
            factor=augment.randaugment.factor, seed=seed + 5,
        ))
    mixers = []
    if augment.mixup:
        mixers.append(keras.layers.MixUp(alpha=augment.mixup, seed=seed + 6))
    if augment.cutmix:
        mixers.append(keras.layers.CutMix(factor=augment.cutmix, seed=seed + 7))

    def apply(images, labels):
        for layer in layers:
            images = layer(images, training=True)
        for mixer in mixers:
            mixed = mixer({"images": images, "labels": labels}, training=True)
            images, labels = mixed["images"], mixed["labels"]
        return images, labels

    apply.layers = [*layers, *mixers]  # their seed-generator states are part of a resumable run's state
    return apply


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    task,
    batch_size: int,
    *,
    training: bool = False,
    augmenter=None,
    sample_weights: Optional[np.ndarray] = None,
    seed: int = 0,
):
    """A batched `tf.data.Dataset` of `(float32 images 0–255, labels[, sample_weights])`.

    Args:
        images: uint8 `[N,H,W,3]` (an array, or an `ImageStore` read a batch at a time), or precomputed
            features `[N,D]`.
        labels: int class ids `[N]`.
        task: the `tltf.task.Task`, which encodes the labels for its output layer.
        batch_size: batch size.
        training: shuffle each epoch and apply `augmenter`.
        augmenter: from `build_augmenter`, or None.
        sample_weights: per-example weights `[N]` (how tltf applies class weights).
        seed: shuffle seed.
    """
    import tensorflow as tf

    targets = task.encode(labels)
    first = _slices(images)
    tensors = (first, targets) if sample_weights is None else (first, targets, sample_weights.astype(np.float32))
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = _read_stored(ds.batch(batch_size), images)

    def prepare(x, y, *w):
        x = tf.cast(x, tf.float32)
        if training and augmenter is not None:
            x, y = augmenter(x, y)
        return (x, y, *w)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_unlabelled_dataset(images: np.ndarray, batch_size: int, *, augmenter=None, seed: int = 0):
    """An endless, shuffled, batched dataset of float32 images (a domain-adaptation target)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(_slices(images)).shuffle(len(images), seed=seed,
                                                                      reshuffle_each_iteration=True)
    ds = _read_stored(ds.repeat().batch(batch_size, drop_remainder=True), images)

    def prepare(x):
        x = tf.cast(x, tf.float32)
        if augmenter is not None:
            x, _ = augmenter(x, tf.zeros((tf.shape(x)[0], 1)))
        return x

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def images_in_batches(images, batch_size: int):
    """Consecutive batches of `images` (an array or an `ImageStore`) as a float32 `tf.data.Dataset`."""
    import tensorflow as tf

    ds = _read_stored(tf.data.Dataset.from_tensor_slices(_slices(images)).batch(batch_size), images)
    return ds.map(lambda x: tf.cast(x, tf.float32)).prefetch(tf.data.AUTOTUNE)


def _slices(images):
    """What tf.data slices: the images themselves, or an `ImageStore`'s positions (its images stay on disk)."""
    return np.arange(len(images)) if isinstance(images, ImageStore) else images


def _read_stored(ds, images):
    """`ds`, with each batch's positions replaced by the images read from `images` when it is an `ImageStore`.

    A map of its own, so reading overlaps the work on other batches.
    """
    import tensorflow as tf

    if not isinstance(images, ImageStore):
        return ds

    def read(positions, *rest):
        batch = tf.numpy_function(images.__getitem__, [positions], tf.uint8, stateful=False)
        batch = tf.ensure_shape(batch, (None, *images.shape[1:]))
        return (batch, *rest) if rest else batch

    return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
