"""A training strategy compiled to data: a list of `Phase`s.

Everything that differs between feature extraction, fine-tuning and head
warm-up is a field here; one trainer (`tltf.train.fit`) runs them all.
"""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Phase:
    """One `model.fit` call with a fixed set of trainable layers.

    Args:
        name: shown in the plan and the logs.
        epochs: epochs in this phase.
        train_backbone: whether the backbone's weights train (the head always does).
        lr: the phase's peak learning rate.
        warmup_epochs: linear learning-rate warm-up at the phase's start.
        schedule: `"constant"` or `"cosine"` decay after warm-up.
        layerwise: whether the recipe's per-unit multipliers (discriminative
            rates, layer decay) apply in this phase.
        unfreeze_every: gradual unfreezing: epochs between two unfreezings
            (None: the backbone is all trainable or all frozen).
        unfreeze_start: gradual unfreezing: head-only epochs first.
    """

    name: str
    epochs: int
    train_backbone: bool
    lr: float
    warmup_epochs: float = 0.0
    schedule: str = "constant"
    layerwise: bool = False
    unfreeze_every: Optional[int] = None
    unfreeze_start: int = 0


def plan_phases(train) -> list[Phase]:
    """Compiles the recipe's `train` section into phases.

    Example:
        plan_phases(recipe.train)
        # warmup_then_finetune, epochs=10, head_warmup.epochs=3 →
        # [Phase("head_warmup", 3, False, 1e-3), Phase("fine_tune", 7, True, 1e-4)]
    """
    common = dict(warmup_epochs=train.warmup_epochs, schedule=train.schedule)
    if train.strategy == "feature_extraction":
        return [Phase("feature_extraction", train.epochs, False, train.lr, **common)]
    if train.strategy == "fine_tune":
        return [Phase("fine_tune", train.epochs, True, train.lr, layerwise=True, **common)]
    if train.strategy == "warmup_then_finetune":
        head = train.head_warmup
        return [
            Phase("head_warmup", head.epochs, False, head.lr, **common),
            Phase("fine_tune", train.epochs - head.epochs, True, train.lr, layerwise=True, **common),
        ]
    if train.strategy == "gradual_unfreeze":
        return [Phase("gradual_unfreeze", train.epochs, True, train.lr, layerwise=True,
                      unfreeze_every=train.gradual.every, unfreeze_start=train.gradual.start_epochs, **common)]
    raise ValueError(f"unknown strategy {train.strategy!r}")


def phase_schedule(phases: list[Phase], steps_per_epoch: int):
    """The `PhaseSchedule` that drives one optimizer through `phases`."""
    from tltf.train.schedules import PhaseSchedule

    return PhaseSchedule([
        {"steps": p.epochs * steps_per_epoch, "lr": p.lr, "warmup_steps": round(p.warmup_epochs * steps_per_epoch),
         "decay": p.schedule}
        for p in phases
    ])
