"""Optimizers with a learning-rate multiplier per variable.

Keras has no per-layer learning rate (keras-team/keras#21741), and its
`MultiOptimizer` does not fit fine-tuning: it insists on a gradient for
every variable it was built with (so blocks cannot be frozen and unfrozen),
each inner optimizer counts its own steps (so a block unfrozen late starts
its warm-up and cosine schedule from zero), and it cannot sit inside a
`LossScaleOptimizer`.

So tltf's optimizers are the stock Keras ones plus one mixin: the update of
each variable uses `learning_rate × multiplier[layer/variable]`, and the
decoupled weight decay scales the same way (as PyTorch parameter groups do).
One step counter, one schedule, one set of slots; standard `model.fit`,
`.keras` saving, `LossScaleOptimizer` and `tf.distribute` all keep working.
"""

from __future__ import annotations

import keras

from tltf._keras_internals import (
    add_variables_to_built_optimizer,
    optimizer_knows,
    optimizer_variable_key,
    optimizer_variables,
    uses_weight_decay,
)
from tltf.models.anatomy import variable_key

# BatchNorm scales/offsets and biases are not regularised toward zero.
NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]


class LayerwiseLearningRates:
    """Mixin: per-variable learning-rate multipliers for a Keras optimizer.

    Example:
        optimizer = LayerwiseAdamW(learning_rate=1e-4, lr_multipliers={"logit/kernel": 10.0})

    Args:
        lr_multipliers: `layer/variable` key (`tltf.models.blocks.variable_key`,
            e.g. `"conv1_conv/kernel"`) → multiplier of the learning rate and
            of the decoupled weight decay. Unlisted variables use 1.
    """

    def __init__(self, *args, lr_multipliers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
        self._multiplier_by_key = {}

    def set_lr_multipliers(self, lr_multipliers: dict) -> None:
        """Replaces the multipliers; they take effect when the train function is next traced (recompile)."""
        self.lr_multipliers = {str(k): float(v) for k, v in lr_multipliers.items()}
        if self.built:
            self._index_multipliers(optimizer_variables(self))

    def multiplier(self, variable) -> float:
        return self.lr_multipliers.get(variable_key(variable), 1.0)

    def build(self, var_list):
        super().build(var_list)
        self._index_multipliers(var_list)

    def _index_multipliers(self, var_list):
        # update_step sees backend variables, which have no Keras path: key by the optimizer's own variable key.
        self._multiplier_by_key = {optimizer_variable_key(self, v): self.multiplier(v) for v in var_list}

    def update_step(self, gradient, variable, learning_rate):
        scale = self._multiplier_by_key.get(optimizer_variable_key(self, variable), 1.0)
        learning_rate = learning_rate * scale if scale != 1.0 else learning_rate
        if self.weight_decay and uses_weight_decay(self, variable):
            decay = keras.ops.cast(self.weight_decay, variable.dtype) * keras.ops.cast(learning_rate, variable.dtype)
            variable.assign(variable - variable * decay)
        return super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        # Applied per variable in update_step instead, so it follows the variable's multiplier.
        return

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": self.lr_multipliers}


@keras.saving.register_keras_serializable(package="tltf")
class LayerwiseAdamW(LayerwiseLearningRates, keras.optimizers.AdamW):
    """AdamW with per-variable learning-rate multipliers (see `LayerwiseLearningRates`)."""


@keras.saving.register_keras_serializable(package="tltf")
class LayerwiseAdam(LayerwiseLearningRates, keras.optimizers.Adam):
    """Adam with per-variable learning-rate multipliers (see `LayerwiseLearningRates`)."""


@keras.saving.register_keras_serializable(package="tltf")
class LayerwiseSGD(LayerwiseLearningRates, keras.optimizers.SGD):
    """SGD with per-variable learning-rate multipliers (see `LayerwiseLearningRates`)."""


_CLASSES = {"adamw": LayerwiseAdamW, "adam": LayerwiseAdam, "sgd": LayerwiseSGD}


def build_optimizer(config, schedule, lr_multipliers=None):
    """AdamW (default), Adam or SGD (momentum 0.9), as a recipe's `train` section names it.

    Example:
        optimizer = build_optimizer(recipe.train.spec(), PhaseSchedule([...]), {"logit/kernel": 10.0})

    Args:
        config: anything with `optimizer` and `weight_decay` (a `tltf.train.spec.TrainingSpec`, or a recipe's
            `train` section).
        schedule: a learning rate or `keras.optimizers.schedules.LearningRateSchedule`.
        lr_multipliers: `layer/variable` key → learning-rate multiplier.
    """
    kwargs = {"learning_rate": schedule, "lr_multipliers": lr_multipliers}
    if config.optimizer == "sgd":
        kwargs.update(momentum=0.9, weight_decay=config.weight_decay or None)
    elif config.optimizer == "adamw":
        kwargs["weight_decay"] = config.weight_decay
    optimizer = _CLASSES[config.optimizer](**kwargs)
    if config.optimizer != "adam" and config.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer


def inner_optimizer(optimizer):
    """The optimizer that holds the slots (unwraps a LossScaleOptimizer)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def ensure_slots(optimizer, variables) -> list:
    """Makes sure `optimizer` has slots for every variable in `variables`.

    An unbuilt optimizer is built on them. A built one that lacks some is
    rebuilt on the union, and the existing slots' values are copied back, so
    the moments of variables it already trained and the step count survive.
    Keras has no public way to add variables to a built optimizer
    (`tltf._keras_internals`).

    Returns:
        the variables that were added.
    """
    inner = inner_optimizer(optimizer)
    if not inner.built:
        optimizer.build(list(variables))
        return list(variables)
    missing = [v for v in variables if not optimizer_knows(inner, v)]
    if missing:
        add_variables_to_built_optimizer(inner, missing)
    return missing


def optimizer_restricted_to(model, trained, make_optimizer):
    """A fresh optimizer holding only `model`'s variables, with `trained`'s step count and those variables' slots.

    Args:
        model: the model whose trainable variables the new optimizer serves.
        trained: the optimizer that trained them (and perhaps others: an adaptation method's own head).
        make_optimizer: builds an optimizer like `trained` (same class, schedule, multipliers, wrapping).
    """
    fresh = make_optimizer()
    fresh.build(model.trainable_variables)
    slots = {v.path.rsplit("/", 1)[-1]: v for v in inner_optimizer(trained).variables}
    for variable in inner_optimizer(fresh).variables:
        source = slots.get(variable.path.rsplit("/", 1)[-1])
        if source is not None and source.shape == variable.shape:
            variable.assign(source)
    return fresh
