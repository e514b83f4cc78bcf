"""Public home of tltf's optimizers and learning-rate schedule (implemented under tltf/train/)."""

from tltf.train.optimizers import (
    LayerwiseAdam,
    LayerwiseAdamW,
    LayerwiseLearningRates,
    LayerwiseSGD,
    build_optimizer,
    ensure_slots,
)
from tltf.train.schedules import PhaseSchedule

__all__ = [
    "LayerwiseAdam", "LayerwiseAdamW", "LayerwiseLearningRates", "LayerwiseSGD", "PhaseSchedule", "build_optimizer",
    "ensure_slots",
]
