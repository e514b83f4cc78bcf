"""The optimizer tltf trains with: one instance for every phase."""

from __future__ import annotations

# BatchNorm scales/offsets and biases are not regularised toward zero.
NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]


def build_optimizer(train, schedule):
    """AdamW (default), Adam or SGD from the recipe's `train` section.

    Example:
        optimizer = build_optimizer(recipe.train, PhaseSchedule([...]))

    Args:
        train: the recipe's `train` section (`optimizer`, `weight_decay`).
        schedule: a learning rate or `keras.optimizers.schedules.LearningRateSchedule`.
    """
    import keras

    if train.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=train.weight_decay)
    elif train.optimizer == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=schedule)
    elif train.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, weight_decay=train.weight_decay or None)
    else:
        raise ValueError(f"unknown optimizer {train.optimizer!r}")
    if train.optimizer != "adam" and train.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer
