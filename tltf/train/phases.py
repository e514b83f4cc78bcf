"""A training strategy compiled to data: a list of `Phase`s.

Everything that differs between feature extraction, fine-tuning and head
warm-up is a field here; one trainer (`tltf.train.trainer.Trainer`) runs them all.
"""

from __future__ import annotations

import dataclasses
import math
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


# Learning-rate defaults by what a phase trains, for recipes that leave `train.lr` unset. A new head on
# frozen features learns from nothing and needs a head's rate; a pretrained backbone is moved gently.
HEAD_LR = 1e-3
FINE_TUNE_LR = 1e-4
SCRATCH_LR = 1e-3


def plan_phases(train, steps_per_epoch: int, pretrained: bool = True) -> list[Phase]:
    """Compiles a `TrainingSpec` (`tltf.train.spec`) into phases.

    Without pretrained weights a frozen backbone computes nothing worth keeping, so every strategy becomes
    `fine_tune`: the whole budget trains the whole network (`feature_extraction` is refused at load).

    Example:
        plan_phases(recipe.train.spec(), steps_per_epoch=74)
        # warmup_then_finetune, epochs=10, head_warmup.epochs=3 →
        # [Phase("head_warmup", 3, False, 1e-3), Phase("fine_tune", 7, True, 1e-4)]
    """
    common = dict(warmup_epochs=train.warmup_epochs, schedule=train.schedule)
    epochs = budget_epochs(train, steps_per_epoch, pretrained)
    lr = base_lr(train, pretrained)
    strategy = train.strategy if pretrained else "fine_tune"
    if strategy == "zero_shot":
        return []  # the model is delivered as built: a CLIP zero-shot classifier (tltf.models.zero_shot)
    if strategy == "feature_extraction":
        return [Phase("feature_extraction", epochs, False, lr, **common)]
    if strategy == "fine_tune":
        return [Phase("fine_tune", epochs, True, lr, layerwise=True, **common)]
    if strategy == "warmup_then_finetune":
        return [
            Phase("head_warmup", train.head_warmup_epochs, False, train.head_warmup_lr, **common),
            Phase("fine_tune", epochs - train.head_warmup_epochs, True, lr, layerwise=True, **common),
        ]
    if strategy == "gradual_unfreeze":
        return [Phase("gradual_unfreeze", epochs, True, lr, layerwise=True,
                      unfreeze_every=train.unfreeze_every, unfreeze_start=train.unfreeze_start_epochs, **common)]
    raise ValueError(f"unknown strategy {train.strategy!r}")


def base_lr(train, pretrained: bool = True) -> float:
    """`train.lr`, or when unset the default for what the strategy's main phase trains."""
    if train.lr is not None:
        return train.lr
    if not pretrained:
        return SCRATCH_LR
    return HEAD_LR if train.strategy == "feature_extraction" else FINE_TUNE_LR


def budget_epochs(train, steps_per_epoch: int, pretrained: bool = True) -> int:
    """`train.epochs`, or for `auto` enough epochs for `train.min_steps` optimizer steps, at most `max_epochs`.

    A budget in epochs starves a small dataset: 12 epochs of 234 images at batch 64 are 48 steps.
    """
    if train.epochs != "auto":
        return train.epochs
    fewest = train.head_warmup_epochs + 1 if pretrained and train.strategy == "warmup_then_finetune" else 1
    return max(fewest, min(train.max_epochs, math.ceil(train.min_steps / max(steps_per_epoch, 1))))


def budget_text(train, steps_per_epoch: int, pretrained: bool = True) -> str:
    """One line on the run's budget, e.g. "14 epochs × 74 steps = 1,036 optimizer steps (epochs auto: ...)"."""
    if train.strategy == "zero_shot":
        return "none: zero_shot trains nothing; the CLIP zero-shot classifier is evaluated as it is built"
    epochs = budget_epochs(train, steps_per_epoch, pretrained)
    text = (f"{_count(epochs, 'epoch')} × {_count(steps_per_epoch, 'step')} = "
            f"{epochs * steps_per_epoch:,} optimizer steps")
    if train.epochs == "auto":
        capped = epochs * steps_per_epoch < train.min_steps
        text += (f" (epochs auto: at least train.min_steps={train.min_steps:,}"
                 + (f", capped at train.max_epochs={train.max_epochs})" if capped else ")"))
    every = validation_interval(train, steps_per_epoch)
    if every > 1:
        text += (f"; validates every {every} epochs and at the end of each phase (train.validate_every_steps="
                 f"{train.validate_every_steps})")
    text += resizing_text(train, steps_per_epoch, pretrained)
    patience = stop_patience(train, steps_per_epoch, pretrained)
    if patience is not None:
        least = f", at least {train.stop.min_patience_steps:,} steps" if train.stop.min_patience_steps else ""
        text += (f"; stops once the best epoch is {_count(patience, 'epoch')} old (train.stop: "
                 f"{train.stop.patience:g} of the epochs{least}) and delivers it")
    return text


def resizing_text(train, steps_per_epoch: int, pretrained: bool = True) -> str:
    """The budget line's part on `train.progressive_resizing` ("" without it, or when no epoch is shrunk)."""
    rule = train.progressive_resizing
    phases = plan_phases(train, steps_per_epoch, pretrained)
    small = rule.small_epochs(phases[-1].epochs) if rule and phases else 0
    if not small:
        return ""
    return (f"; the first {_count(small, 'epoch')} of {phases[-1].name}'s {phases[-1].epochs} train at {rule.size} "
            f"px, the rest at the full size, validation always at the full size, that phase without XLA "
            f"(train.progressive_resizing)")


def validation_interval(train, steps_per_epoch: int) -> int:
    """Epochs between two validations: enough for `train.validate_every_steps` optimizer steps."""
    return max(1, math.ceil(train.validate_every_steps / max(steps_per_epoch, 1)))


def validated_epochs(first: int, end: int, every: int) -> list[int]:
    """The 1-based epochs of a phase running epochs `first` to `end - 1` (0-based) that validate: every `every`th
    epoch of the run, and the phase's last."""
    return [epoch for epoch in range(first + 1, end + 1) if epoch % every == 0 or epoch == end]


def stop_patience(train, steps_per_epoch: int, pretrained: bool = True) -> Optional[int]:
    """The epochs without improvement after which the run stops (`train.stop`), or None: it runs its budget."""
    if train.stop is None or train.strategy == "zero_shot":
        return None
    return train.stop.patience_epochs(budget_epochs(train, steps_per_epoch, pretrained), steps_per_epoch)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'s' if number != 1 else ''}"


def phase_schedule(phases: list[Phase], steps_per_epoch: int):
    """The `PhaseSchedule` that drives one optimizer through `phases`."""
    from tltf.train.schedules import PhaseSchedule

    return PhaseSchedule([
        {"steps": p.epochs * steps_per_epoch, "lr": p.lr, "warmup_steps": round(p.warmup_epochs * steps_per_epoch),
         "decay": p.schedule}
        for p in phases
    ])
