"""explain(recipe): the fine-tuning a recipe asks for, block by block, without training.

For each phase (and each step of a gradual unfreezing) and each unit from the
stem to the head: trainable or frozen, BatchNorm mode, parameter count, the
effective learning rate at the start, peak and end of the phase, and the
weight decay. The data is read only as far as needed for the classes and the
training-set size; the backbone is built without weights.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from tltf.models.blocks import HEAD, BlockMap, leaf_layers, parameters
from tltf.train.layerwise import recipe_unit_multipliers_checked
from tltf.train.phases import phase_schedule, plan_phases
from tltf.train.unfreezing import unfrozen_count


def explain(recipe) -> dict:
    """`{"phases": [{"name", "epochs", "blocks": [...]}, ...], "warnings": [...]}` (see docs/fine-tuning.md)."""
    from tltf.data.sources import peek_data
    from tltf.models.build import build_model_from_recipe

    peek = peek_data(recipe.data)
    structure_only = recipe.model_copy(update={"model": recipe.model.model_copy(update={"weights": None})})
    model = build_model_from_recipe(structure_only, len(peek.class_names))
    block_map = BlockMap.of(model, recipe.train.unit)
    multipliers = recipe_unit_multipliers_checked(recipe.train, block_map.names)
    phases = plan_phases(recipe.train)
    steps_per_epoch = math.ceil(peek.train_count / recipe.train.batch_size)
    schedule = phase_schedule(phases, steps_per_epoch)
    boundaries = schedule.boundaries()
    backbone_units = [name for name in block_map.names if name != HEAD]
    decays = {name: _decays(block_map, model, name) for name in block_map.names}

    rows = []
    for phase, start in zip(phases, boundaries):
        for name, epochs, trainable in _segments(phase, backbone_units):
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
                    "bn": "train" if trains and recipe.model.bn == "train" else "frozen",
                    "params": block_map.params(unit),
                    "lr": {"start": float(rates[0] * scale), "peak": float(rates.max() * scale),
                           "end": float(rates[-1] * scale)},
                    "weight_decay": float(recipe.train.weight_decay)
                    if trains and decays[unit] and recipe.train.optimizer != "adam" else 0.0,
                })
            rows.append({"name": name, "epochs": int(epochs), "blocks": blocks})
    return {"phases": rows, "warnings": peek.warnings + _replica_warnings(recipe)}


def _segments(phase, backbone_units: list[str]):
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


def _decays(block_map: BlockMap, model, unit: str) -> bool:
    """Whether a unit has any weight-decayed parameter (anything but biases and BatchNorm)."""
    from tltf.train.optimizers import NO_WEIGHT_DECAY

    return any(v.name not in NO_WEIGHT_DECAY
               for layer in block_map.layers_of(model, unit) for leaf in leaf_layers(layer) for v in parameters(leaf))


def _replica_warnings(recipe) -> list[str]:
    import tensorflow as tf

    gpus = len(tf.config.list_logical_devices("GPU"))
    train = recipe.train
    if train.distribution == "default" and gpus > 1:
        return [f"train.distribution: {gpus} GPUs are visible but the default distribution uses one; "
                "set train.distribution: mirrored"]
    replicas = max(gpus, 1) if train.distribution == "mirrored" else 1
    if replicas <= 1:
        return []
    per_replica = train.batch_size / replicas
    return [f"train.batch_size: {train.batch_size} is the global batch over {replicas} replicas "
            f"({per_replica:g} each) and the learning rates are not scaled for them; if batch_size and lr were "
            f"tuned on one device, use batch_size {train.batch_size * replicas} and about {replicas}x the rates"]


def format_explanation(explanation: dict) -> str:
    """Plain-text tables, one per phase."""
    from tltf.evaluate.report import format_table

    header = ("block", "trainable", "BN", "params", "lr start", "lr peak", "lr end", "weight decay")
    parts = []
    for phase in explanation["phases"]:
        rows = [(b["name"], "yes" if b["trainable"] else "frozen", b["bn"], f"{b['params']:,}",
                 f"{b['lr']['start']:.3g}", f"{b['lr']['peak']:.3g}", f"{b['lr']['end']:.3g}",
                 f"{b['weight_decay']:g}") for b in phase["blocks"]]
        parts.append(f"phase {phase['name']}: {phase['epochs']} epochs\n" + format_table(rows, header))
    for warning in explanation["warnings"]:
        parts.append(f"warning: {warning}")
    return "\n\n".join(parts) + "\n"
