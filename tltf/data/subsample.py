"""Fewer labels on purpose: a stratified, seeded, nested subsample of the training split."""

from __future__ import annotations

from typing import Optional

import numpy as np


def subsample_indices(labels: np.ndarray, *, fraction: Optional[float] = None, per_class: Optional[int] = None,
                      seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified subsample of `labels`: `fraction` of each class, or `per_class` of each.

    Each class's images are put in one seeded order and the subsample takes a prefix of it, so subsamples with
    the same seed are nested (the 5% subset holds the 1% subset) and every arm of a study sees the same images.
    Every class keeps at least one image.

    Example:
        subsample_indices(labels, fraction=0.05, seed=0)    # about 5% of each class
        subsample_indices(labels, per_class=20, seed=0)     # 20 of each class (all of a smaller class)

    Args:
        labels: int class ids `[N]`.
        fraction: the share of each class to keep, in (0, 1].
        per_class: how many images of each class to keep.
        seed: the data seed, separate from the training seed.
    """
    if (fraction is None) == (per_class is None):
        raise ValueError("give exactly one of fraction or per_class")
    rng = np.random.default_rng(seed)
    kept = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[rng.permutation(len(members))]
        kept.append(order[:kept_count(len(members), fraction, per_class)])
    return np.sort(np.concatenate(kept))


def kept_count(class_size: int, fraction: Optional[float], per_class: Optional[int]) -> int:
    """How many of a class's `class_size` images a subsample keeps: at least one, at most all."""
    count = per_class if per_class is not None else int(round(fraction * class_size))
    return min(class_size, max(1, count))


def subsample_count(class_counts: list[int], data) -> int:
    """How many training images `data.train_fraction` / `train_per_class` leave of `class_counts` (for dry runs)."""
    if data.train_fraction is None and data.train_per_class is None:
        return int(sum(class_counts))
    return sum(kept_count(c, data.train_fraction, data.train_per_class) for c in class_counts if c)
