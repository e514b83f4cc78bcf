"""What `tltf.train` needs of a recipe's training settings, as plain values.

The recipe is translated at the edge (`tltf.recipe.training.TrainConfig.spec`); nothing under `tltf.train`
reads a recipe section.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Union


@dataclasses.dataclass(frozen=True)
class DiscriminativeRates:
    """Discriminative learning rates: the head's rate, and the backbone groups' rates or their range.

    Args:
        head: the head's learning rate.
        groups: one rate per group of backbone units, stem first; or None.
        range: `(low, high)`: rates spaced geometrically from the stem to the last unit; or None.
    """

    head: float
    groups: Optional[tuple] = None
    range: Optional[tuple] = None


@dataclasses.dataclass(frozen=True)
class StopRule:
    """Stop a run once validation has stopped improving: after `patience` × the budget's epochs without a better
    epoch, and never sooner than `min_patience_steps` optimizer steps after the best.

    Args:
        patience: the patience as a fraction of the run's epochs.
        min_patience_steps: the least patience, in optimizer steps (an epoch of a large dataset is many steps).
    """

    patience: float
    min_patience_steps: int

    def patience_epochs(self, budget_epochs: int, steps_per_epoch: int) -> int:
        """The patience in whole epochs for a run of `budget_epochs` epochs of `steps_per_epoch` steps."""
        by_budget = math.ceil(self.patience * budget_epochs)
        by_steps = math.ceil(self.min_patience_steps / max(steps_per_epoch, 1))
        return max(1, by_budget, by_steps)


@dataclasses.dataclass(frozen=True)
class ResizingRule:
    """Progressive resizing: the first `fraction` of the last phase's epochs train at `size` px.

    Args:
        size: the smaller square image size, in pixels.
        fraction: the share of the last phase's epochs at `size`; at least its last epoch trains at full size.
    """

    size: int
    fraction: float

    def small_epochs(self, phase_epochs: int) -> int:
        """How many of a phase's `phase_epochs` epochs train at the smaller size."""
        return max(0, min(phase_epochs - 1, round(self.fraction * phase_epochs)))


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    """How a run trains, as `tltf.train` reads it.

    Example:
        spec = tltf.load_recipe("recipes/pneumonia-mobilenet.yaml").train.spec()
        plan_phases(spec, steps_per_epoch=74)

    Args:
        strategy: `feature_extraction`, `fine_tune`, `warmup_then_finetune`, `gradual_unfreeze` or `zero_shot`.
        epochs: the epochs of all phases, or `"auto"` (enough for `min_steps`, at most `max_epochs`).
        min_steps: with `epochs: auto`, the fewest optimizer steps.
        max_epochs: with `epochs: auto`, the most epochs.
        lr: the base (fine-tuning) rate, or None for the strategy's default.
        warmup_epochs: the learning-rate warm-up of each phase.
        schedule: `constant` or `cosine`.
        head_warmup_epochs, head_warmup_lr: `warmup_then_finetune`'s head phase.
        unfreeze_every, unfreeze_start_epochs: `gradual_unfreeze`'s pace.
        unit: `block` or `stage`: what per-unit rates address.
        layer_decay: the layer-wise rate decay, or None.
        discriminative: discriminative rates, or None.
        optimizer: `adamw`, `adam` or `sgd`.
        weight_decay: the decoupled weight decay.
        batch_size: the global batch size.
        distribution: `default`, `mirrored` or `multi_worker`.
        stop: when the run stops before its budget (`StopRule`), or None: it runs the whole budget.
        validate_every_steps: the fewest optimizer steps between two validations.
        progressive_resizing: the last phase's first epochs at a smaller size (`ResizingRule`), or None.
    """

    strategy: str
    epochs: Union[int, str]
    min_steps: int
    max_epochs: int
    lr: Optional[float]
    warmup_epochs: float
    schedule: str
    head_warmup_epochs: int
    head_warmup_lr: float
    unfreeze_every: int
    unfreeze_start_epochs: int
    unit: str
    layer_decay: Optional[float]
    discriminative: Optional[DiscriminativeRates]
    optimizer: str
    weight_decay: float
    batch_size: int
    distribution: str
    stop: Optional[StopRule] = None
    validate_every_steps: int = 1
    progressive_resizing: Optional[ResizingRule] = None
