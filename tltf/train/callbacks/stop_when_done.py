from tltf.log import logger
from tltf.train.callbacks.early_stopping import EarlyStopping


class StopWhenDone(EarlyStopping):
    """Stops a fit once its monitored metric has not improved for `patience` epochs, and says what that saved.

    `tltf.callbacks.EarlyStopping` (its counter survives a resumed run) that logs one line when it stops: the
    best value and epoch, and the epochs and optimizer steps left unrun. `stopped_epoch` (1-based, 0 while
    running) and `epochs_saved` record it. It restores nothing: keep the best epoch with a checkpoint callback
    (`tltf.callbacks.BestModelCheckpoint`, or `restore_best_weights=True`).

    Example:
        stop = tltf.callbacks.StopWhenDone(monitor="val_auc", mode="max", patience=25)
        model.fit(ds, validation_data=val, epochs=100, callbacks=[stop])
        print(stop.stopped_epoch, stop.epochs_saved)

    Args:
        eligible: an epoch log entry that must be true for an epoch to count (as `BestModelCheckpoint`'s); None:
            every epoch counts.
        Others: those of `keras.callbacks.EarlyStopping`.
    """

    def __init__(self, *args, eligible=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eligible = eligible
        self.epochs_saved = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.eligible is not None and not (logs or {}).get(self.eligible):
            return  # not judged yet: neither a best epoch nor a step toward stopping
        super().on_epoch_end(epoch, logs)
        if not self.model.stop_training or self.stopped_epoch != epoch:
            return
        self.stopped_epoch = epoch + 1
        self.epochs_saved = max(0, int(self.params.get("epochs") or 0) - self.stopped_epoch)
        steps = self.params.get("steps")
        saved = f" ({self.epochs_saved * steps:,} optimizer steps)" if steps else ""
        since = epoch - self.best_epoch  # epochs, not validations: a fit may validate every few epochs
        logger.info(f"stopped at epoch {self.stopped_epoch}: {self.monitor} has not improved on {self.best:.4f} "
                    f"(epoch {self.best_epoch + 1}) for {since} epochs; the {self.epochs_saved} epochs left{saved} "
                    f"were not run")

    def get_state(self) -> dict:
        return {**super().get_state(), "stopped_epoch": self.stopped_epoch, "epochs_saved": self.epochs_saved}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.stopped_epoch, self.epochs_saved = state.get("stopped_epoch", 0), state.get("epochs_saved", 0)

    def on_train_end(self, logs=None):
        pass  # Keras' own line ("Epoch N: early stopping") would repeat the one above
