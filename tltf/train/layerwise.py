"""Learning-rate multipliers per unit: discriminative rates and layer-wise decay.

Pure functions from ordered unit names (stem → head, see
`tltf.models.blocks`) to multipliers of the base learning rate, and from
those to variable paths, for `tltf.optimizers.LayerwiseLearningRates`.
"""

from __future__ import annotations

import numpy as np

from tltf.models.blocks import HEAD


def layer_decay_multipliers(units: list[str], decay: float) -> dict[str, float]:
    """`decay ** distance from the head`: the head 1, the unit below it `decay`, ...

    Example:
        layer_decay_multipliers(["stem", "block1", "block2", "head"], 0.9)
        # {"stem": 0.729, "block1": 0.81, "block2": 0.9, "head": 1.0}
    """
    return {name: float(decay ** (len(units) - 1 - i)) for i, name in enumerate(units)}


def split_groups(backbone_units: list[str], count: int) -> list[list[str]]:
    """Contiguous groups of units, stem first, as even as possible (later groups get the remainder)."""
    if count > len(backbone_units):
        raise ValueError(f"{count} groups for {len(backbone_units)} backbone units")
    sizes = [len(part) for part in np.array_split(np.arange(len(backbone_units)), count)][::-1]
    groups, start = [], 0
    for size in sizes:
        groups.append(backbone_units[start : start + size])
        start += size
    return groups


def discriminative_multipliers(units: list[str], base_lr: float, head_lr: float, group_lrs=None,
                               lr_range=None) -> dict[str, float]:
    """Multipliers of `base_lr` giving each group of backbone units its own rate.

    Either `group_lrs` (one rate per contiguous group, stem first) or
    `lr_range = (low, high)`, spread geometrically over the backbone units
    from the stem (low) to the last unit (high), like fastai's `slice`.

    Example:
        discriminative_multipliers(["stem", "b1", "b2", "head"], 1e-4, 1e-3, group_lrs=[1e-5, 1e-4])
        # {"stem": 0.1, "b1": 1.0, "b2": 1.0, "head": 10.0}   (b1, b2 share the second group)
    """
    backbone = [u for u in units if u != HEAD]
    rates: dict[str, float] = {}
    if group_lrs is not None:
        for group, rate in zip(split_groups(backbone, len(group_lrs)), group_lrs):
            rates.update({name: rate for name in group})
    elif lr_range is not None:
        low, high = lr_range
        spread = np.geomspace(low, high, len(backbone)) if len(backbone) > 1 else [high]
        rates.update({name: float(rate) for name, rate in zip(backbone, spread)})
    else:
        raise ValueError("give group_lrs or lr_range")
    rates[HEAD] = head_lr
    return {name: float(rates[name] / base_lr) for name in units}


def variable_multipliers(key_to_unit: dict[str, str], unit_multipliers: dict[str, float]) -> dict[str, float]:
    """`layer/variable` key → multiplier, from `BlockMap.path_to_unit()`; multipliers of 1 are left out.

    BatchNorm statistics are listed too; the optimizer never sees them, so they cost nothing.
    """
    return {key: unit_multipliers[unit] for key, unit in key_to_unit.items() if unit_multipliers.get(unit, 1.0) != 1.0}


def unit_multipliers(train, units: list[str], base_lr: float) -> dict[str, float]:
    """A `TrainingSpec`'s layer decay or discriminative rates as unit multipliers (all 1 if neither)."""
    if train.layer_decay is not None:
        return layer_decay_multipliers(units, train.layer_decay)
    if train.discriminative is not None:
        d = train.discriminative
        return discriminative_multipliers(units, base_lr, d.head, d.groups, d.range)
    return {name: 1.0 for name in units}


def unit_multipliers_checked(train, units: list[str], base_lr: float) -> dict[str, float]:
    """`unit_multipliers`, with a recipe error when the discriminative groups do not fit the backbone."""
    from tltf.errors import RecipeError

    backbone = [u for u in units if u != HEAD]
    groups = train.discriminative.groups if train.discriminative is not None else None
    if groups is not None and len(groups) > len(backbone):
        raise RecipeError(f"train.discriminative.groups: {len(groups)} rates for {len(backbone)} backbone "
                          f"{train.unit}s ({', '.join(backbone)}); give at most {len(backbone)}")
    return unit_multipliers(train, units, base_lr)
