"""Unit-by-unit descriptions of a phase: what trains, BatchNorm, parameters, effective rates, weight decay.

Pure functions of a block map, a phase and its learning-rate schedule, used
by the plan assembly (`tltf.assemble`), so `tltf explain` and a run
describe a phase the same way.
"""

from __future__ import annotations

import itertools

import numpy as np

from tltf.models.anatomy import backbone_of, head_of, leaf_layers, parameters
from tltf.models.blocks import HEAD
from tltf.models.lora import adapter_summary
from tltf.train.plan import Segment
from tltf.train.unfreezing import unfrozen_count


def phase_segments(phase, first_step: int, steps_per_epoch: int, schedule, block_map, multipliers: dict,
                   backbone_units: list, bn: str, decays: dict) -> list:
    """One `Segment` per stretch of `phase` with one set of trainable units, with each unit's effective rates."""
    segments, start = [], first_step
    for name, epochs, trainable in _segment_units(phase, backbone_units):
        steps = np.arange(start, start + epochs * steps_per_epoch)
        start += epochs * steps_per_epoch
        rates = np.asarray(schedule(steps), dtype=np.float64)
        blocks = []
        for unit in block_map.names:
            trains = unit == HEAD or unit in trainable
            scale = (multipliers[unit] if phase.layerwise else 1.0) if trains else 0.0
            blocks.append({
                "name": unit,
                "trainable": trains,
                "bn": "train" if trains and bn == "train" else "frozen",
                "params": block_map.params(unit),
                "lr": {"start": float(rates[0] * scale), "peak": float(rates.max() * scale),
                       "end": float(rates[-1] * scale)},
                "weight_decay": decays[unit] if trains else 0.0,
            })
            lora = adapter_summary(block_map.variables.get(unit, []))
            if lora:
                blocks[-1]["lora"] = lora
        segments.append(Segment(name, int(epochs), blocks))
    return segments


def _segment_units(phase, backbone_units: list):
    """(name, epochs, trainable backbone units) runs of a phase; a gradual phase has one per unfreezing."""
    if not phase.unfreeze_every:
        yield phase.name, phase.epochs, set(backbone_units) if phase.train_backbone else set()
        return
    counts = [unfrozen_count(e, len(backbone_units), phase.unfreeze_every, phase.unfreeze_start)
              for e in range(phase.epochs)]
    for count, run in itertools.groupby(counts):
        units = backbone_units[len(backbone_units) - count:] if count else []
        label = f"+{units[0]}" if count else "head only"
        yield f"{phase.name} ({label})", len(list(run)), set(units)


def unit_decays(block_map, model, config) -> dict:
    """Each unit's weight decay when it trains: the configured one if it has any decayed parameter
    (anything but biases and BatchNorm) and the optimizer decays (not plain Adam), else 0.

    Args:
        config: a `tltf.train.spec.TrainingSpec` (its `optimizer` and `weight_decay`).
    """
    from tltf.train.optimizers import NO_WEIGHT_DECAY

    def decays(unit: str) -> bool:
        return any(v.name not in NO_WEIGHT_DECAY for layer in block_map.layers_of(model, unit)
                   for leaf in leaf_layers(layer) for v in parameters(leaf))

    applies = config.optimizer != "adam"
    return {unit: float(config.weight_decay) if applies and decays(unit) else 0.0 for unit in block_map.names}


def param_counts(model, train_backbone: bool) -> tuple[int, int]:
    """(trainable, frozen) weights of `model` when the backbone trains or not; the model is not changed."""
    def count(variables) -> int:
        return int(sum(np.prod(v.shape) for v in variables))

    head = count(v for leaf in leaf_layers(head_of(model)) for v in parameters(leaf))
    backbone = count(v for leaf in leaf_layers(backbone_of(model)) for v in parameters(leaf))
    trainable = head + (backbone if train_backbone else 0)
    return trainable, count(model.weights) - trainable


def replica_warnings(config) -> list[str]:
    """Advice when GPUs and the distribution setting disagree, or the batch is split over replicas.

    Args:
        config: a `tltf.train.spec.TrainingSpec` (its `distribution` and `batch_size`).
    """
    import tensorflow as tf

    gpus = len(tf.config.list_logical_devices("GPU"))
    if config.distribution == "default" and gpus > 1:
        return [f"train.distribution: {gpus} GPUs are visible but the default distribution uses one; "
                "set train.distribution: mirrored"]
    replicas = max(gpus, 1) if config.distribution == "mirrored" else 1
    if replicas <= 1:
        return []
    per_replica = config.batch_size / replicas
    return [f"train.batch_size: {config.batch_size} is the global batch over {replicas} replicas "
            f"({per_replica:g} each) and the learning rates are not scaled for them; if batch_size and lr were "
            f"tuned on one device, use batch_size {config.batch_size * replicas} and about {replicas}x the rates"]
