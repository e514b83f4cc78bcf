"""The learning-rate finder: an exponential sweep of the rate over a few steps, then everything put back."""

from __future__ import annotations

import math

import keras

from tltf.train import learning_rate_rules


class LearningRateFinder(keras.callbacks.Callback):
    """Sweeps the learning rate exponentially, one rate per training step, records the smoothed loss, and then puts
    the model and optimizer back exactly as they were (Smith, 2017; fastai's `lr_find`).

    Step `i` of `steps` trains at `min_lr · (max_lr/min_lr)^(i/(steps−1))`. The loss is smoothed with an
    exponential moving average (bias-corrected); the sweep stops once the smoothed loss exceeds
    `divergence` × its lowest value, or after `steps` steps. When training ends every model variable (weights,
    BatchNorm statistics, random-generator states) and every optimizer variable (slots, step count, the rate)
    is restored bit for bit. The optimizer's learning rate must be a number (a variable), not a schedule.

    `suggested_lr` is the rate the `rule` reads off the smoothed loss (`tltf.train.learning_rate_rules`), None
    when the curve gives it nothing; `suggestions` holds every rule's rate by name (each fits one curve shape:
    docs/fine-tuning.md).

    Example:
        finder = tltf.callbacks.LearningRateFinder(min_lr=1e-6, max_lr=1.0, steps=100)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="binary_crossentropy")
        model.fit(train_ds.repeat(), steps_per_epoch=100, epochs=1, callbacks=[finder])
        print(finder.suggested_lr, finder.suggestions)   # the model is as it was before the fit

    Args:
        min_lr: the first rate.
        max_lr: the last rate.
        steps: at most this many steps (rates).
        smoothing: the moving average's β.
        divergence: stop when the smoothed loss passes this multiple of its minimum.
        rule: the rule's name (`tltf.train.learning_rate_rules.names()`) or a `LearningRateRule`.
    """

    def __init__(self, min_lr: float = 1e-7, max_lr: float = 1.0, steps: int = 100, smoothing: float = 0.98,
                 divergence: float = 4.0, rule=learning_rate_rules.DEFAULT):
        super().__init__()
        if not 0 < min_lr < max_lr:
            raise ValueError(f"need 0 < min_lr < max_lr, got {min_lr}, {max_lr}")
        self.min_lr, self.max_lr, self.steps = float(min_lr), float(max_lr), max(int(steps), 2)
        self.smoothing, self.divergence = float(smoothing), float(divergence)
        self.lrs, self.losses, self.suggested_lr, self.suggestions = [], [], None, {}
        self.rule = learning_rate_rules.get(rule)

    def rate_at(self, step: int) -> float:
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.steps - 1))

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if not isinstance(optimizer.learning_rate, keras.Variable) and not hasattr(optimizer.learning_rate,
                                                                                   "assign"):
            raise ValueError("LearningRateFinder needs an optimizer whose learning_rate is a number, not a schedule")
        if getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError("LearningRateFinder sets a rate per step and reads each step's loss: compile the model "
                             f"with steps_per_execution=1, not {self.model.steps_per_execution}")
        self._saved_model = [v.numpy() for v in self.model.variables]
        self._saved_optimizer = [v.numpy() for v in optimizer.variables]
        self._average, self._lowest, self._step, self._seen_in_epoch, self._previous_mean = 0.0, math.inf, 0, 0, 0.0
        self.lrs, self.losses = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._seen_in_epoch, self._previous_mean = 0, 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rate_at(self._step))

    def on_train_batch_end(self, batch, logs=None):
        # Keras logs the epoch's running mean; this batch's own loss is what the mean moved by.
        mean = float((logs or {})["loss"])
        self._seen_in_epoch += 1
        loss = self._seen_in_epoch * mean - (self._seen_in_epoch - 1) * self._previous_mean
        self._previous_mean = mean
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        smoothed = self._average / (1 - self.smoothing ** (self._step + 1))
        self.lrs.append(self.rate_at(self._step))
        self.losses.append(smoothed)
        self._lowest = min(self._lowest, smoothed)
        self._step += 1
        if self._step >= self.steps or not math.isfinite(smoothed) or smoothed > self.divergence * self._lowest:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for variable, value in zip(self.model.variables, self._saved_model):
            variable.assign(value)
        for variable, value in zip(self.model.optimizer.variables, self._saved_optimizer):
            variable.assign(value)
        self.suggestions = learning_rate_rules.suggest_all(self.lrs, self.losses)
        self.suggested_lr = self.rule.suggest(self.lrs, self.losses)

    def result(self) -> dict:
        """`{"suggested_lr", "rule", "rule_description", "suggestions", "lrs", "losses"}` (the losses smoothed), as
        `tltf lr-find` writes it; `suggestions`: every rule's rate by name."""
        return {"suggested_lr": self.suggested_lr, "rule": self.rule.name, "rule_description": self.rule.description,
                "suggestions": dict(self.suggestions), "lrs": list(map(float, self.lrs)),
                "losses": list(map(float, self.losses))}

