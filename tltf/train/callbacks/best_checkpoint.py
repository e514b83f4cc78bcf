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

    A criterion that can say it cannot judge an epoch (DEV, when its importance
    weights fail their check) names a log entry with `eligible`: only epochs
    where it is true compete on `monitor`. Until one does, the epoch with the
    best `fallback_monitor` is the best one, so a run whose criterion never
    judged still delivers a reasoned choice; `chosen_by` says which rule did.

    Example:
        best = BestModelCheckpoint("run/model.keras", model, monitor="val_auc")
        head.fit(features, labels, validation_data=val, callbacks=[best])
        best.restore_best()

        best = BestModelCheckpoint("run/model.keras", model, monitor="dev_risk", mode="min",
                                   eligible="dev_trusted", fallback_monitor="val_auc")

    Args:
        path: the `.keras` file to write.
        model: the model to save (default: the one being fitted).
        monitor: a metric in the epoch logs.
        mode: `"max"` or `"min"`.
        min_seconds_between_saves: 0 writes at every improvement.
        eligible: a log entry that must be true (non-zero) for an epoch to compete on `monitor`.
        fallback_monitor: with `eligible`, what chooses while no epoch has been eligible.
        fallback_mode: `"max"` or `"min"` for `fallback_monitor`.

    Attributes:
        write_at_train_end: whether a best not yet written is written when `fit` ends (True); a caller
            that saves the model itself right after the last `fit` sets it False for that one.
    """

    def __init__(self, path, model=None, monitor: str = "val_auc", mode: str = "max",
                 min_seconds_between_saves: float = 0.0, eligible=None, fallback_monitor=None,
                 fallback_mode: str = "max"):
        super().__init__()
        self.path = str(path)
        self.saved_model = model
        self.monitor = monitor
        self.mode = mode
        self.eligible = eligible
        self.primary = _Tracker(mode)
        self.fallback = _Tracker(fallback_mode) if fallback_monitor else None
        self.fallback_monitor = fallback_monitor
        self.min_seconds_between_saves = min_seconds_between_saves
        self._last_save = -float("inf")
        self._unsaved = False
        self.write_at_train_end = True

    @property
    def _leader(self):
        """The primary tracker once an epoch has competed on `monitor` (or without a fallback), else the fallback."""
        return self.primary if self.primary.epoch is not None or self.fallback is None else self.fallback

    @property
    def best(self) -> float:
        return self._leader.value

    @property
    def best_epoch(self):
        return self._leader.epoch

    @property
    def best_weights(self):
        return self._leader.weights

    @property
    def chosen_by(self) -> str:
        """`monitor`'s name, or `fallback_monitor`'s when no epoch was eligible."""
        return self.monitor if self._leader is self.primary else self.fallback_monitor

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        candidates = [(self.primary, self.monitor, self.eligible is None or bool(logs.get(self.eligible)))]
        if self.fallback is not None:
            candidates.append((self.fallback, self.fallback_monitor, True))
        improved = [tracker for tracker, key, competes in candidates
                    if competes and logs.get(key) is not None and not np.isnan(logs[key])
                    and tracker.improved(logs[key])]
        if not improved:
            return
        weights = (self.saved_model or self.model).get_weights()
        if not all(np.isfinite(w).all() for w in weights if np.issubdtype(w.dtype, np.floating)):
            return  # a diverged model is never the best one, whatever its metric says
        for tracker, key, _ in candidates:
            if tracker in improved:
                tracker.value, tracker.epoch, tracker.weights = float(logs[key]), epoch, weights
        if self._leader not in improved:
            return  # only the fallback moved, and the criterion already leads
        if time.monotonic() - self._last_save >= self.min_seconds_between_saves:
            self.save()
        else:
            self._unsaved = True

    def get_state(self) -> tuple[dict, dict]:
        """`(meta, arrays)`: the trackers' values and epochs (JSON), and their weights by `best/<i>` and
        `best_fallback/<i>`, for a run's saved training state (`tltf.train.resume`)."""
        meta = {"value": self.primary.value, "epoch": self.primary.epoch}
        arrays = {f"best/{i}": w for i, w in enumerate(self.primary.weights or [])}
        if self.fallback is not None:
            meta["fallback"] = {"value": self.fallback.value, "epoch": self.fallback.epoch}
            arrays.update({f"best_fallback/{i}": w for i, w in enumerate(self.fallback.weights or [])})
        return meta, arrays

    def set_state(self, meta: dict, arrays: dict) -> None:
        """Puts back what `get_state` returned."""
        for tracker, key, prefix in ((self.primary, None, "best/"), (self.fallback, "fallback", "best_fallback/")):
            if tracker is None:
                continue
            saved = meta.get(key, {}) if key else meta
            weights = [arrays[k] for k in sorted((k for k in arrays if k.startswith(prefix)),
                                                 key=lambda k: int(k.rsplit("/", 1)[1]))]
            tracker.value = saved.get("value", tracker.value)
            tracker.epoch, tracker.weights = saved.get("epoch"), weights or None

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


class _Tracker:
    """The best value of one criterion so far, its epoch and the weights then."""

    def __init__(self, mode: str):
        self.mode = mode
        self.value = -np.inf if mode == "max" else np.inf
        self.epoch = None
        self.weights = None

    def improved(self, value) -> bool:
        return value > self.value if self.mode == "max" else value < self.value
