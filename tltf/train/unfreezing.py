"""Which units train: pure schedule arithmetic and the one function that sets the flags."""

from __future__ import annotations

from tltf.models.blocks import HEAD, BlockMap


def unfrozen_count(epoch: int, num_units: int, every: int, start_epochs: int) -> int:
    """How many backbone units (from the top) train at `epoch` (0-based).

    Example:
        [unfrozen_count(e, 3, every=2, start_epochs=1) for e in range(7)]
        # [0, 1, 1, 2, 2, 3, 3]
    """
    if epoch < start_epochs:
        return 0
    return min(num_units, 1 + (epoch - start_epochs) // every)


def set_trainable_units(model, block_map: BlockMap, trainable_units) -> None:
    """Makes exactly `trainable_units` of the backbone (and the head) trainable.

    Keras needs the train function rebuilt (recompile, or
    `model.make_train_function(force=True)`) for the change to take effect.
    """
    from tltf.models.anatomy import backbone_of

    trainable_units = set(trainable_units)
    backbone_of(model).trainable = True  # sets every layer; the loop below freezes the rest
    for name in block_map.names:
        if name == HEAD:
            continue
        for layer in block_map.layers_of(model, name):
            layer.trainable = name in trainable_units


def backbone_units(block_map: BlockMap) -> list[str]:
    return [name for name in block_map.names if name != HEAD]
