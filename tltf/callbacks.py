"""Public home of tltf's Keras callbacks (implemented in tltf/train/callbacks/, one per file)."""

from tltf.train.callbacks import (
    BestModelCheckpoint, EarlyStopping, GradualUnfreezing, IntentCheck, IntentViolation, TrainingHealth,
)

__all__ = ["BestModelCheckpoint", "EarlyStopping", "GradualUnfreezing", "IntentCheck", "IntentViolation", "TrainingHealth"]
