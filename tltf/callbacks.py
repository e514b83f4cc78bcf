"""Public home of tltf's Keras callbacks (implemented in tltf/train/callbacks/, one per file)."""

from tltf.train.callbacks import BestModelCheckpoint, GradualUnfreezing, IntentCheck, IntentViolation, TrainingHealth

__all__ = ["BestModelCheckpoint", "GradualUnfreezing", "IntentCheck", "IntentViolation", "TrainingHealth"]
