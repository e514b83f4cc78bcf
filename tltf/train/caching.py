"""Which fit target a phase gets, and why a cache is not used when it is not.

A phase whose backbone is frozen fits the head on backbone features computed once (`HeadOnFeatures`); a phase
whose lowest blocks stay frozen throughout fits the rest on their output computed once (`AboveFrozenPrefix`);
anything else fits the whole model on images (`FullModel`). Each cache is exact only on unaugmented images; with
augmentation on, the same caches of K augmented views (`HeadOnAugmentedViews`, `AboveFrozenPrefixOnViews`) are
approximations, made only when the recipe asks for them (`train.augmented_views`).
"""

from __future__ import annotations

from tltf.train.augmented_views import MAX_VIEW_BYTES, AboveFrozenPrefixOnViews, HeadOnAugmentedViews, view_bytes
from tltf.train.frozen_prefix import AboveFrozenPrefix, find_cut, frozen_units, units_text
from tltf.train.targets import FullModel, HeadOnFeatures, LabelledData

AUGMENTED = "augmentation is on"


class CacheChoice:
    """Chooses each phase's fit target; the head-on-features target is shared, so features are computed once.

    Example:
        choice = CacheChoice(model, task, data, block_map, augmented=False, enabled=True, adapted=False)
        target, note = choice.for_phase(phase_plan)   # note: why no cache ("" when one is used)

    Args:
        model: the classifier.
        task: the `tltf.task.Task`.
        data: its `LabelledData`.
        block_map: the model's `BlockMap` (the units the plan's segments name).
        augmented: whether training images are augmented (no cache is exact then).
        enabled: `train.feature_cache`.
        adapted: whether an adaptation method trains on images (it takes the whole model).
        head_steps: training steps per call for a head on features.
        verbose: the extraction's progress bar.
        views: `train.augmented_views`: with augmentation on, cache what stays frozen for this many augmented
            views of each image (None: no cache with augmentation).
        make_augmenter: `fn(seed) -> augmenter` for the views.
    """

    def __init__(self, model, task, data: LabelledData, block_map, augmented: bool, enabled: bool, adapted: bool,
                 head_steps: int = 1, verbose: int = 2, views=None, make_augmenter=None):
        self.model, self.task, self.data, self.block_map = model, task, data, block_map
        self.augmented, self.enabled, self.adapted = augmented, enabled, adapted
        self.head_steps, self.verbose = head_steps, verbose
        self.views, self.make_augmenter = views, make_augmenter
        self.whole = FullModel(model, task, data)
        self._on_features = None

    def for_phase(self, phase_plan) -> tuple:
        """`(fit target, note)`: the note says why the phase runs uncached ("" when it uses a cache)."""
        blocker = self._blocker()
        on_views = blocker == AUGMENTED and self.views and self.enabled and not self.adapted
        if not phase_plan.phase.train_backbone:
            if on_views:
                return self._on_views()
            if blocker:
                return self.whole, blocker
            self._on_features = self._on_features or HeadOnFeatures(self.model, self.task, self.data, self.verbose,
                                                                    self.head_steps)
            return self._on_features, ""
        units = frozen_units(phase_plan.segments)
        if not units:
            return self.whole, "the backbone trains"
        frozen = f"the backbone trains above {units_text(units)} frozen all phase, not cached: "
        if blocker and not on_views:
            return self.whole, frozen + blocker
        splits = self.data.splits
        copies = self.views if on_views else 1
        cut = find_cut(self.model, self.block_map, units, copies * len(splits.train) + len(splits.val))
        if isinstance(cut, str):
            return self.whole, frozen + (f"{AUGMENTED}; {self.views} augmented views: " if on_views else "") + cut
        if on_views:
            return AboveFrozenPrefixOnViews(self.model, self.task, self.data, cut, self.views, self.make_augmenter,
                                            self.verbose), ""
        return AboveFrozenPrefix(self.model, self.task, self.data, cut, self.verbose), ""

    def _on_views(self) -> tuple:
        """The shared augmented-views target, or the whole model and why not (the views would not fit in memory)."""
        from tltf.models.anatomy import head_of

        needed = view_bytes(len(self.data.splits.train), self.views, head_of(self.model).input_shape[-1])
        if needed > MAX_VIEW_BYTES:
            return self.whole, (f"{AUGMENTED}; train.augmented_views: {self.views} would take "
                                f"{needed / 1024**3:.1f} GB, over {MAX_VIEW_BYTES / 1024**3:.0f} GB")
        self._on_features = self._on_features or HeadOnAugmentedViews(
            self.model, self.task, self.data, self.views, self.make_augmenter, self.verbose, self.head_steps)
        return self._on_features, ""

    def _blocker(self) -> str:
        if self.augmented:
            return AUGMENTED
        if not self.enabled:
            return "train.feature_cache is false"
        if self.adapted:
            return "adaptation trains on images"
        return ""
