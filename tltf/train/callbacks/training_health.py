import math

import keras

from tltf.log import logger

ADVICE = ("try a lower learning rate (train.lr), fewer trainable blocks at first (warmup_then_finetune or "
          "gradual_unfreeze), or class_weight: auto for imbalanced data")


class TrainingHealth(keras.callbacks.Callback):
    """Watches a fit for divergence, collapse and stalls, says so in one line, and stops a failed phase.

    - divergence: the loss is not finite (checked every step), or an epoch's
      loss exceeds `divergence_factor` × the loss of the first step;
    - collapse: the validation AUC sits at 0.5 (constant predictions) for
      `collapse_epochs` epochs in a row;
    - overfitting: the validation AUC has not improved for `stall_epochs`
      epochs while the training loss kept falling and the validation loss
      rose by more than `overfit_rise` (a fraction) since the best epoch: the
      model is past its best, not stuck;
    - stall: the validation AUC has not improved for `stall_epochs` epochs
      otherwise.
    Overfitting and stalls are reported once each, with the best epoch, and
    never stop the fit (early stopping is the tool for that).

    One instance may watch several `fit` calls (tltf's phases); the best AUC
    and the first loss carry over. Works in any `model.fit` whose logs have
    `loss` and the monitored metric.

    Example:
        health = tltf.callbacks.TrainingHealth()
        model.fit(ds, validation_data=val, epochs=20, callbacks=[health])
        print(health.status, health.events)

    Args:
        monitor: the validation metric whose 0.5 means constant predictions.
        collapse_epochs: epochs at 0.5 that make a collapse.
        divergence_factor: how far above the first step's loss is divergence.
        stall_epochs: epochs without improvement that make a stall (or overfitting); in a fit that validates
            every few epochs (`validation_freq`), validated epochs.
        overfit_rise: how far the validation loss must have risen above its value at the best epoch, as a
            fraction of it, to call a stall overfitting.
        stop: stop the `fit` on divergence or collapse (the best checkpoint is kept by its own callback).
    """

    def __init__(self, monitor: str = "val_auc", collapse_epochs: int = 2, divergence_factor: float = 10.0,
                 stall_epochs: int = 5, stop: bool = True, overfit_rise: float = 0.05):
        super().__init__()
        self.monitor = monitor
        self.collapse_epochs = collapse_epochs
        self.divergence_factor = divergence_factor
        self.stall_epochs = stall_epochs
        self.stop = stop
        self.overfit_rise = overfit_rise
        self.events: list[dict] = []
        self._first_loss = None
        self._at_chance = 0
        self._best, self._since_best = -math.inf, 0
        self._at_best = {}  # the epoch, training loss and validation loss of the best epoch
        self._non_finite_seen, self._epoch = False, 0

    @property
    def status(self) -> str:
        """`ok`, or the most serious event's kind: `diverged`, `collapsed`, `overfitting`, `stalled`."""
        kinds = {event["kind"] for event in self.events}
        return next((kind for kind in ("diverged", "collapsed", "overfitting", "stalled") if kind in kinds), "ok")

    def get_state(self) -> dict:
        """The trackers that carry over between epochs (for resuming a run)."""
        return {"events": self.events, "first_loss": self._first_loss, "at_chance": self._at_chance,
                "best": self._best if math.isfinite(self._best) else None, "since_best": self._since_best,
                "at_best": dict(self._at_best)}

    def set_state(self, state: dict) -> None:
        self.events = list(state["events"])
        self._first_loss, self._at_chance = state["first_loss"], state["at_chance"]
        self._best = -math.inf if state["best"] is None else state["best"]
        self._since_best = state["since_best"]
        self._at_best = dict(state.get("at_best") or {})  # absent in a run saved before tltf tracked it

    def on_train_begin(self, logs=None):
        self._non_finite_seen = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self._first_loss is None and loss is not None and math.isfinite(float(loss)):
            self._first_loss = float(loss)  # the loss before training has moved the weights much
        if loss is not None and not math.isfinite(float(loss)) and not self._non_finite_seen:
            self._non_finite_seen = True
            self._report("diverged", self._epoch, f"the training loss became {float(loss)} at step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._check_divergence(epoch, logs.get("loss"))
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        self._at_chance = self._at_chance + 1 if abs(float(value) - 0.5) < 1e-6 else 0
        if self._at_chance == self.collapse_epochs:
            self._report("collapsed", epoch, f"{self.monitor} has been 0.5 (a constant prediction) for "
                                             f"{self.collapse_epochs} epochs")
        if float(value) > self._best:
            self._best, self._since_best = float(value), 0
            self._at_best = {"epoch": epoch + 1, "loss": logs.get("loss"), "val_loss": logs.get("val_loss")}
        else:
            self._since_best += 1
            if self._since_best == self.stall_epochs:
                self._report_plateau(epoch, logs)

    def _report_plateau(self, epoch: int, logs: dict) -> None:
        """Overfitting (training improves, validation loss rises) or a stall; each reported once."""
        best = self._at_best
        since = epoch + 1 - best["epoch"] if best.get("epoch") else self.stall_epochs
        at_best = f"{self.monitor} has not improved on {self._best:.4f} (epoch {best.get('epoch')}) for " \
                  f"{since} epochs"
        losses = (best.get("loss"), logs.get("loss"), best.get("val_loss"), logs.get("val_loss"))
        if None not in losses:
            loss_then, loss_now, val_then, val_now = map(float, losses)
            if loss_now < loss_then and val_now > val_then * (1 + self.overfit_rise):
                kind = "overfitting"
                at_best += (f" while the training loss fell ({loss_then:.4g} → {loss_now:.4g}) and the validation "
                            f"loss rose ({val_then:.4g} → {val_now:.4g}): past its best")
            else:
                kind = "stalled"
        else:
            kind = "stalled"
        if kind not in {event["kind"] for event in self.events}:
            self._report(kind, epoch, at_best, stop=False)

    def _check_divergence(self, epoch: int, loss) -> None:
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            if not self._non_finite_seen:
                self._non_finite_seen = True
                self._report("diverged", epoch, f"the training loss is {loss}")
        elif self._first_loss and loss > self.divergence_factor * self._first_loss:
            self._report("diverged", epoch, f"the training loss rose to {loss:.4g}, over {self.divergence_factor:g}× "
                                            f"its first value, {self._first_loss:.4g}")

    def _report(self, kind: str, epoch: int, what: str, stop: bool = True) -> None:
        headline = "overfitting" if kind == "overfitting" else f"training {kind}"
        message = f"{headline} at epoch {epoch + 1}: {what}; " + (
            ADVICE if kind not in ("stalled", "overfitting") else "the best epoch so far is kept")
        if stop and self.stop:
            message += "; the phase was stopped and the best checkpoint kept"
            self.model.stop_training = True
        self.events.append({"kind": kind, "epoch": epoch + 1, "message": message})
        logger.warning(message)
