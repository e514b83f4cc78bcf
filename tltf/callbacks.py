"""Public home of tltf's Keras callbacks (implemented in tltf/train/callbacks/, one per file)."""

from tltf.train.callbacks import (
    BatchNormCalibration,
    BestModelCheckpoint,
    EarlyStopping,
    GradualUnfreezing,
    IntentCheck,
    IntentViolation,
    LearningRateFinder,
    ProgressiveResizing,
    StopWhenDone,
    TrainingHealth,
    WeightAveraging,
)

__all__ = [
    "BatchNormCalibration", "BestModelCheckpoint", "EarlyStopping", "GradualUnfreezing", "IntentCheck",
    "IntentViolation", "LearningRateFinder", "ProgressiveResizing", "StopWhenDone", "TrainingHealth",
    "WeightAveraging",
]
