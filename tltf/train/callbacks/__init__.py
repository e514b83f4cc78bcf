"""Keras callbacks tltf uses; each works in a user's own `model.fit`."""

from tltf.train.callbacks.best_checkpoint import BestModelCheckpoint

__all__ = ["BestModelCheckpoint"]
