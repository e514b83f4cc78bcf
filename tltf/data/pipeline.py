"""tf.data pipelines: shuffle → batch → augment (train only) → prefetch.

Images stay uint8 until the batch is formed; augmentation runs as Keras-core
preprocessing layers inside a parallel `map`, and `prefetch` keeps it off the
training step's critical path.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


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
        layers.append(keras.layers.RandomTranslation(augment.translate, augment.translate, fill_mode="reflect", seed=seed + 3))
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

    from tltf.data.image_store import ImageStore, read_batch

    targets = task.encode(labels)
    on_disk = isinstance(images, ImageStore)
    # Images on disk travel as their positions, and a batch is read when the map reaches it.
    first = np.arange(len(labels)) if on_disk else images
    tensors = (first, targets) if sample_weights is None else (first, targets, sample_weights.astype(np.float32))
    ds = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if on_disk:
        ds = ds.map(lambda x, *rest: (read_batch(images, x), *rest), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)

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

    from tltf.data.image_store import ImageStore, read_batch

    on_disk = isinstance(images, ImageStore)
    ds = tf.data.Dataset.from_tensor_slices(np.arange(len(images)) if on_disk else images)
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size, drop_remainder=True)

    if on_disk:
        ds = ds.map(lambda x: read_batch(images, x), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def prepare(x):
        x = tf.cast(x, tf.float32)
        if augmenter is not None:
            x, _ = augmenter(x, tf.zeros((tf.shape(x)[0], 1)))
        return x

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

