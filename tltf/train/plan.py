"""The training plan: what a run trains, phase by phase, as plain data.

A `TrainingPlan` is assembled from a recipe (`tltf.assemble`), shown by
`tltf explain` and the run's log, and executed by `tltf.train.trainer.Trainer`
with one `model.fit` per phase. The plan holds everything the trainer needs
(the model, the optimizer, per phase the fitted model, its datasets and its
callbacks); the trainer reads nothing else.

Plans are immutable: `tltf.assemble` builds one complete plan, and an
adaptation method returns a new plan (`dataclasses.replace`) instead of
changing the one it was given.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

from tltf.train.collaborators import Finisher, FitTarget
from tltf.train.phases import Phase


@dataclasses.dataclass(frozen=True)
class Segment:
    """A stretch of a phase with one set of trainable units; a gradual phase has one per unfreezing.

    Args:
        name: the phase name, with the newest unit for a gradual step.
        epochs: how many epochs the segment lasts.
        blocks: one dict per unit, stem to head: `name`, `trainable`, `bn`,
            `params`, `lr` (`start`, `peak`, `end`: the effective rate) and
            `weight_decay`.
    """

    name: str
    epochs: int
    blocks: list

    def to_dict(self) -> dict:
        return {"name": self.name, "epochs": self.epochs, "blocks": self.blocks}


@dataclasses.dataclass(frozen=True)
class PhasePlan:
    """One `model.fit` call.

    Args:
        phase: the strategy's phase (name, epochs, rate, which part trains).
        first_step: the optimizer step the phase starts at.
        end_step: the step after its last one.
        segments: what trains, unit by unit, in each stretch of the phase.
        trainable_params: parameters that train in this phase (the console plan).
        frozen_params: all other weights, BatchNorm statistics included.
        fit_target: what is fitted (`tltf.train.targets`); None in a plan made
            only to be explained.
        callbacks: Keras callbacks this phase needs, in the order they run (an adaptation method's own
            first, then unfreezing, intent check, health, early stopping).
        feature_cache_note: why the phase does not use the feature cache ("" when it does).
        lr_multipliers: multipliers this phase alone applies, over the plan's (an adversarial method holds its
            domain classifier still while nothing plays against it).
    """

    phase: Phase
    first_step: int
    end_step: int
    segments: tuple
    trainable_params: int
    frozen_params: int
    fit_target: Optional[FitTarget] = None
    callbacks: tuple = ()
    feature_cache_note: str = ""
    lr_multipliers: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def feature_cache(self) -> bool:
        """Whether this phase fits the head on cached backbone features."""
        return bool(getattr(self.fit_target, "caches_features", False))


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """Everything a run trains, and how.

    Example:
        plan = assemble_training(recipe, model, splits)
        print(plan.to_dict()["phases"][0]["blocks"][-1]["lr"])   # the head's rates in the first phase
        history = Trainer().run(plan, Path("checkpoints"))

    Args:
        phases: the `PhasePlan`s, in order.
        steps_per_epoch: optimizer steps in one epoch.
        warnings: advice about the recipe and data (shown by explain and fit).
        model: the classifier that is delivered (saved at its best epoch).
        fitted_model: the model whose variables the optimizer serves: the classifier, or an adaptation
            method's wrapper around it.
        optimizer: the one optimizer of every phase; its slots carry over.
        lr_multipliers: `layer/variable` key → learning-rate multiplier for
            the phases that use per-unit rates.
        task: the `tltf.task.Task` (loss and metrics of the delivered model).
        monitor: the epoch log entry that chooses the best epoch.
        monitor_mode: `"max"` or `"min"`: which value of `monitor` is best.
        monitor_eligible: an epoch log entry that must be true for an epoch to compete on `monitor` (DEV's
            `dev_trusted`); None: every epoch competes.
        monitor_fallback: with `monitor_eligible`, the entry (larger is better) that chooses while no epoch
            has been eligible.
        method_lr_multipliers: learning-rate multipliers every phase applies on top of the per-unit ones (an
            adaptation method's own layers, e.g. a faster domain classifier).
        finishers: `fn(model)` steps applied to the delivered model once its best epoch is restored, before
            it is saved (AdaBN's target statistics).
        retained_optimizer: optional `fn(optimizer) -> optimizer` giving the
            optimizer state the delivered model keeps (an adaptation method
            drops its own variables).
        schedule: the `PhaseSchedule` that drives the optimizer through the phases.
        health: the `TrainingHealth` callback that watches every phase (in their callbacks too).
        checkpoint_every: also save the training state every this many steps (None: at epoch ends only).
        budget: one line on the epochs and optimizer steps, and how `epochs: auto` chose them.
        jit_compile: `model.compile`'s `jit_compile` for every phase (True, False or "auto").
        regularization: one line on the penalties added to the loss (L2-SP), "" without.
        validate_every: epochs between two validations (each phase's last epoch validates too); the epochs
            between log no validation metrics and cannot be the best.
        stop_patience: `train.stop`: the last phase ends once the best epoch is this many epochs old; None: the
            run goes to the end of its budget.
    """

    phases: tuple
    steps_per_epoch: int
    warnings: tuple
    model: Optional[object] = None
    fitted_model: Optional[object] = None
    optimizer: Optional[object] = None
    lr_multipliers: Mapping[str, float] = dataclasses.field(default_factory=dict)
    task: Optional[object] = None
    monitor: str = "val_auc"
    monitor_mode: str = "max"
    monitor_eligible: Optional[str] = None
    monitor_fallback: Optional[str] = None
    method_lr_multipliers: Mapping[str, float] = dataclasses.field(default_factory=dict)
    finishers: tuple[Finisher, ...] = ()
    retained_optimizer: Optional[Callable] = None
    schedule: Optional[object] = None
    health: Optional[object] = None
    checkpoint_every: Optional[int] = None
    budget: str = ""
    jit_compile: object = "auto"
    regularization: str = ""
    validate_every: int = 1
    stop_patience: Optional[int] = None

    def to_dict(self) -> dict:
        """What `tltf explain --json` prints: every segment of every phase, and the warnings."""
        explained = {"phases": [segment.to_dict() for phase in self.phases for segment in phase.segments],
                     "budget": self.budget, "warnings": list(self.warnings)}
        if self.regularization:
            explained["regularization"] = self.regularization
        return explained

    def summary_rows(self) -> list[tuple]:
        """One row per phase for the console plan and report.md."""
        return [(p.phase.name, p.phase.epochs, f"{p.phase.lr:g}", "trains" if p.phase.train_backbone else "frozen",
                 f"{p.trainable_params:,}", f"{p.frozen_params:,}",
                 getattr(p.fit_target, "cached", "") or (f"no ({p.feature_cache_note})" if p.feature_cache_note
                                                          else "no"))
                for p in self.phases]
