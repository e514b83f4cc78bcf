import os
import time

import keras
import numpy as np


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves a model whenever a monitored metric improves, atomically.

    Unlike `keras.callbacks.ModelCheckpoint` it can save a model other than
    the one being fitted (tltf fits the head on cached features but saves
    the full backbone+head model), and it keeps its best value across
    several `fit` calls, one per phase. The best weights are also kept in
    memory for `restore_best`. An epoch whose weights are not all finite is
    never the best.

    Writing a `.keras` file takes about a second for a MobileNetV2, more than
    a whole epoch of a head on cached features; with `min_seconds_between_saves`
    an improvement that comes sooner after the last write is kept in memory
    only, and written when the `fit` ends (or at the next improvement after the
    interval), so the file is never further behind than that.

    Example:
        best = BestModelCheckpoint("run/model.keras", model, monitor="val_auc")
        head.fit(features, labels, validation_data=val, callbacks=[best])
        best.restore_best()

    Args:
        path: the `.keras` file to write.
        model: the model to save (default: the one being fitted).
        monitor: a metric in the epoch logs.
        mode: `"max"` or `"min"`.
        min_seconds_between_saves: 0 writes at every improvement.

    Attributes:
        write_at_train_end: whether a best not yet written is written when `fit` ends (True); a caller
            that saves the model itself right after the last `fit` sets it False for that one.
    """

    def __init__(self, path, model=None, monitor: str = "val_auc", mode: str = "max",
                 min_seconds_between_saves: float = 0.0):
        super().__init__()
        self.path = str(path)
        self.saved_model = model
        self.monitor = monitor
        self.mode = mode
        self.best = -np.inf if mode == "max" else np.inf
        self.best_epoch = None
        self.best_weights = None
        self.min_seconds_between_saves = min_seconds_between_saves
        self._last_save = -float("inf")
        self._unsaved = False
        self.write_at_train_end = True

    def _improved(self, value) -> bool:
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or np.isnan(value) or not self._improved(value):
            return
        target = self.saved_model or self.model
        weights = target.get_weights()
        if not all(np.isfinite(w).all() for w in weights if np.issubdtype(w.dtype, np.floating)):
            return  # a diverged model is never the best one, whatever its metric says
        self.best, self.best_epoch, self.best_weights = float(value), epoch, weights
        if time.monotonic() - self._last_save >= self.min_seconds_between_saves:
            self.save()
        else:
            self._unsaved = True

    def on_train_end(self, logs=None):
        if not self._unsaved or not self.write_at_train_end:
            return
        target = self.saved_model or self.model
        current = target.get_weights()
        target.set_weights(self.best_weights)
        self.save()
        target.set_weights(current)

    def save(self) -> None:
        """Writes the model as it is now; next to the final file, then renamed, so a crash never leaves half a model."""
        partial = self.path + ".partial.keras"
        (self.saved_model or self.model).save(partial)
        os.replace(partial, self.path)
        self._last_save, self._unsaved = time.monotonic(), False

    def restore_best(self) -> None:
        """Sets the model's weights back to the best epoch's."""
        if self.best_weights is not None:
            (self.saved_model or self.model).set_weights(self.best_weights)
