"""Which fit target a phase gets, and why a cache is not used when it is not.

A phase whose backbone is frozen fits the head on backbone features computed once (`HeadOnFeatures`); a phase
whose lowest blocks stay frozen throughout fits the rest on their output computed once (`AboveFrozenPrefix`);
anything else fits the whole model on images (`FullModel`). Each cache is exact only on unaugmented images.
"""

from __future__ import annotations

from tltf.train.frozen_prefix import AboveFrozenPrefix, find_cut, frozen_units, units_text
from tltf.train.targets import FullModel, HeadOnFeatures, LabelledData


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
    """

    def __init__(self, model, task, data: LabelledData, block_map, augmented: bool, enabled: bool, adapted: bool,
                 head_steps: int = 1, verbose: int = 2):
        self.model, self.task, self.data, self.block_map = model, task, data, block_map
        self.augmented, self.enabled, self.adapted = augmented, enabled, adapted
        self.head_steps, self.verbose = head_steps, verbose
        self.whole = FullModel(model, task, data)
        self._on_features = None

    def for_phase(self, phase_plan) -> tuple:
        """`(fit target, note)`: the note says why the phase runs uncached ("" when it uses a cache)."""
        blocker = self._blocker()
        if not phase_plan.phase.train_backbone:
            if blocker:
                return self.whole, blocker
            self._on_features = self._on_features or HeadOnFeatures(self.model, self.task, self.data, self.verbose,
                                                                    self.head_steps)
            return self._on_features, ""
        units = frozen_units(phase_plan.segments)
        if not units:
            return self.whole, "the backbone trains"
        frozen = f"the backbone trains above {units_text(units)} frozen all phase, not cached: "
        if blocker:
            return self.whole, frozen + blocker
        splits = self.data.splits
        cut = find_cut(self.model, self.block_map, units, len(splits.train) + len(splits.val))
        if isinstance(cut, str):
            return self.whole, frozen + cut
        return AboveFrozenPrefix(self.model, self.task, self.data, cut, self.verbose), ""

    def _blocker(self) -> str:
        if self.augmented:
            return "augmentation is on"
        if not self.enabled:
            return "train.feature_cache is false"
        if self.adapted:
            return "adaptation trains on images"
        return ""
