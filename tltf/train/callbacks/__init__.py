"""Keras callbacks tltf uses; each works in a user's own `model.fit`."""

from tltf.train.callbacks.batch_norm_calibration import BatchNormCalibration
from tltf.train.callbacks.best_checkpoint import BestModelCheckpoint
from tltf.train.callbacks.early_stopping import EarlyStopping
from tltf.train.callbacks.gradual_unfreezing import GradualUnfreezing
from tltf.train.callbacks.intent_check import IntentCheck, IntentViolation
from tltf.train.callbacks.learning_rate_finder import LearningRateFinder
from tltf.train.callbacks.progressive_resizing import ProgressiveResizing
from tltf.train.callbacks.stop_when_done import StopWhenDone
from tltf.train.callbacks.training_health import TrainingHealth
from tltf.train.callbacks.weight_averaging import WeightAveraging

__all__ = [
    "BatchNormCalibration", "BestModelCheckpoint", "EarlyStopping", "GradualUnfreezing", "IntentCheck",
    "IntentViolation", "LearningRateFinder", "ProgressiveResizing", "StopWhenDone", "TrainingHealth",
    "WeightAveraging",
]
