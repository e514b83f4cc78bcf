import keras


class EarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose patience counter survives a resumed run.

    `get_state`/`set_state` carry the counter and the best value; a `fit` that
    starts after `set_state` continues counting instead of starting over.

    Example:
        stop = tltf.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=3)
        model.fit(ds, validation_data=val, epochs=20, callbacks=[stop])

    Args:
        Those of `keras.callbacks.EarlyStopping`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._restored = False

    def get_state(self) -> dict:
        best = getattr(self, "best", None)  # before its first fit, Keras has not set these yet
        return {"wait": int(getattr(self, "wait", 0)), "best": None if best is None else float(best),
                "best_epoch": int(getattr(self, "best_epoch", 0))}

    def set_state(self, state: dict) -> None:
        self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
        self.best_weights = None
        self._restored = True

    def get_monitor_value(self, logs):
        if not any(key.startswith("val_") for key in logs or {}) and self.monitor.startswith("val_"):
            return None  # an epoch that did not validate (`fit(validation_freq=...)`): nothing to judge
        return super().get_monitor_value(logs)

    @property
    def done(self) -> bool:
        """Whether patience has run out: a fit resumed from this state must not start another epoch."""
        return bool(getattr(self, "wait", 0) >= self.patience and getattr(self, "best", None) is not None)

    def on_train_begin(self, logs=None):
        if self._restored:
            self._restored = False
            self.stopped_epoch = 0
            return
        super().on_train_begin(logs)
