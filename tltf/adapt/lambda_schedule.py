"""The gradient-reversal strength λ over training."""

from __future__ import annotations

import math

import keras


def ganin_lambda(progress: float, gamma: float = 10.0, maximum: float = 1.0) -> float:
    """Ganin & Lempitsky's `2 / (1 + exp(−γ·p)) − 1`, scaled to `maximum`; `p` is training progress in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    return maximum * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class GradientReversalSchedule(keras.callbacks.Callback):
    """Sets a `GradientReversal` layer's λ before every step from `optimizer.iterations`.

    Driven by the optimizer's step count rather than by its own counter, so a
    run restored from a checkpoint continues the schedule where it stopped.

    Example:
        model.fit(ds, epochs=10, callbacks=[GradientReversalSchedule(reversal, total_steps=10 * steps)])

    Args:
        layer: the `tltf.layers.GradientReversal` layer.
        total_steps: the step at which progress reaches 1.
        schedule: `"ganin"` or `"constant"`.
        gamma: the Ganin schedule's steepness.
        maximum: λ at the end (and throughout, when constant).
        start_step: λ is 0 before this step and progress counts from it
            (tltf starts it when the backbone first trains: before that, the
            reversed gradient has nothing to adapt).
    """

    def __init__(self, layer, total_steps: int, schedule: str = "ganin", gamma: float = 10.0, maximum: float = 1.0,
                 start_step: int = 0):
        super().__init__()
        if schedule not in ("ganin", "constant"):
            raise ValueError(f"schedule must be 'ganin' or 'constant', got {schedule!r}")
        self.layer = layer
        self.total_steps = max(int(total_steps), 1)
        self.schedule = schedule
        self.gamma = gamma
        self.maximum = maximum
        self.start_step = int(start_step)

    def value_at(self, step: int) -> float:
        if step < self.start_step:
            return 0.0
        if self.schedule == "constant":
            return self.maximum
        span = max(self.total_steps - self.start_step, 1)
        return ganin_lambda((step - self.start_step) / span, self.gamma, self.maximum)

    def on_train_batch_begin(self, batch, logs=None):
        self.layer.lambda_.assign(self.value_at(int(self.model.optimizer.iterations.numpy())))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lambda"] = float(self.layer.lambda_.numpy())
