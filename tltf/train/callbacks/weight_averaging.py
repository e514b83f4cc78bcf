"""Exponential moving average of the weights: validated, checkpointed and delivered in place of the raw weights."""

from __future__ import annotations

import keras
import numpy as np


class WeightAveraging(keras.callbacks.Callback):
    """Keeps an exponential moving average of the trainable weights; validation and checkpoints see the average.

    After every optimizer step each trainable variable's average moves toward its value:
    `average = momentum · average + (1 − momentum) · weight` (after k steps at once, as with
    `steps_per_execution`, momentum^k). A variable starts its average when it is first seen trainable, so a
    backbone unfrozen late averages from its pretrained values. The average is swapped into the model for
    every validation and at every epoch end (so a best-checkpoint callback placed after this one keeps the
    averaged weights), and swapped out again before training continues. Non-trainable variables (BatchNorm's
    moving statistics) are not averaged: recompute them for the averaged weights with `BatchNormCalibration`
    placed after this callback when BatchNorm trains. Keras' optimizer EMA (`use_ema`) was not used: its
    `fit` writes the average into the model at the end of every `fit` call, which a plan of several fits (and a
    resumed epoch) would see as a jump in the trained weights.

    Example:
        averaging = tltf.callbacks.WeightAveraging(momentum=0.99)
        model.fit(x, y, validation_data=(xv, yv), epochs=10, callbacks=[averaging, checkpoint])
        averaging.swap_in()    # the model now holds the averaged weights

    Args:
        momentum: how much of the average each step keeps, in [0, 1); 0.99 averages over about 100 steps.
    """

    def __init__(self, momentum: float = 0.99):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.average = {}  # variable key -> float32 array
        self.swapped = False  # the model holds the averages (and `average` the raw weights)
        self._step = None
        self._swapped_for_test = False

    def _variables(self) -> list:
        from tltf.models.anatomy import variable_key

        return [(variable_key(v), v) for v in self.model.weights if v.trainable]

    def _include_new_variables(self) -> None:
        for key, variable in self._variables():
            if key not in self.average:
                self.average[key] = np.array(variable.numpy(), dtype=np.float32)

    def swap_in(self) -> None:
        """The averages into the model (the raw weights kept); a no-op when they are in."""
        if not self.swapped:
            self._swap()

    def swap_out(self) -> None:
        """The raw weights back into the model; a no-op when they are in."""
        if self.swapped:
            self._swap()

    def _swap(self) -> None:
        for key, variable in self._variables():
            if key in self.average:
                current = np.array(variable.numpy(), dtype=np.float32)
                variable.assign(self.average[key])
                self.average[key] = current
        self.swapped = not self.swapped

    def on_train_begin(self, logs=None):
        self.swap_out()  # a resumed state saved at an epoch end holds the averages in the model
        self._include_new_variables()
        self._step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        steps, self._step = step - self._step, step
        if steps <= 0:
            return
        keep = self.momentum ** steps
        for key, variable in self._variables():
            weights = np.asarray(variable.numpy(), np.float32)
            # A variable unfrozen within the fit (by another callback) starts its average here.
            previous = self.average.get(key, weights)
            self.average[key] = keep * previous + (1 - keep) * weights

    def on_test_begin(self, logs=None):
        self._swapped_for_test = not self.swapped
        self.swap_in()

    def on_test_end(self, logs=None):
        if self._swapped_for_test:
            self.swap_out()
        self._swapped_for_test = False

    def on_epoch_begin(self, epoch, logs=None):
        self.swap_out()

    def on_epoch_end(self, epoch, logs=None):
        self.swap_in()

    def on_train_end(self, logs=None):
        self.swap_out()

    # Resume (tltf.train.resume): the flag as JSON state, the averages as arrays.
    def get_state(self) -> dict:
        return {"swapped": self.swapped, "keys": list(self.average)}

    def set_state(self, state: dict) -> None:
        self.swapped = bool(state["swapped"])

    def get_state_arrays(self) -> list:
        return list(self.average.values())

    def set_state_arrays(self, state: dict, arrays: list) -> None:
        self.average = {key: np.array(value, np.float32) for key, value in zip(state["keys"], arrays)}
