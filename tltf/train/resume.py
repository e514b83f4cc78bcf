"""Resumable training: the whole training state, saved atomically at every epoch end, and restored.

Like Keras' `BackupAndRestore`, but for a plan of several `fit` calls: one
`.npz` file (`resume.npz` in the checkpoint folder) holds every variable of
the model and of the fitted model around it (BatchNorm statistics and
seed-generator states included), the optimizer's variables (slots, step
count), the augmentation layers' seed states, the best checkpoint's weights,
and as JSON the phase and epoch reached, the merged history, the
best-checkpoint tracker and the state of the current phase's callbacks that
have one (`get_state`/`set_state`: early stopping, the health monitor; large state such as weight averages
as arrays, `get_state_arrays`/`set_state_arrays`). It is written next to its final name
and renamed, so a run killed at any moment leaves the previous epoch's state
whole. What is derived from the step count (the learning rate, λ, which
blocks are unfrozen) needs no saving; the feature cache is recomputed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from tltf.train.collaborators import StatefulCallback

STATE_FILE = "resume.npz"


@dataclasses.dataclass
class Progress:
    """How far a plan has got: the next phase to run, the epochs done, and what they logged."""

    phase_index: int = 0
    epoch: int = 0
    batch: int = 0  # batches done in the epoch in progress (a save within an epoch)
    phase_starts: list = dataclasses.field(default_factory=list)
    history: dict = dataclasses.field(default_factory=dict)


def state_variables(plan) -> dict[str, list]:
    """The variables a run's state consists of, in a fixed order, grouped."""
    model_vars = list(plan.model.variables)
    known = {id(v) for v in model_vars}
    fitted = []
    for phase_plan in plan.phases:
        for variable in phase_plan.fit_target.model.variables:
            if id(variable) not in known:
                known.add(id(variable))
                fitted.append(variable)
    augmenter = getattr(plan.phases[0].fit_target.data, "augmenter", None) if plan.phases else None
    augment_vars = [v for layer in getattr(augmenter, "layers", []) for v in layer.variables]
    return {"model": model_vars, "fitted": fitted, "optimizer": list(plan.optimizer.variables),
            "augment": augment_vars}


def _stateful_callbacks(plan, progress: Progress) -> list:
    """The current phase's callbacks that carry state between epochs (`get_state`/`set_state`)."""
    if progress.phase_index >= len(plan.phases):
        return []
    return [cb for cb in plan.phases[progress.phase_index].callbacks if isinstance(cb, StatefulCallback)]


def save_state(directory: Path, plan, progress: Progress, best, replace=None) -> None:
    """Writes `directory/resume.npz` atomically.

    Args:
        replace: group → arrays saved instead of the variables' values (within an epoch: the augmentation
            states as the epoch began, and the metric accumulators of the epoch so far).
    """
    arrays = {}
    groups = {**{group: [v.numpy() for v in variables] for group, variables in state_variables(plan).items()},
              **(replace or {})}
    for group, values in groups.items():
        for index, value in enumerate(values):
            arrays[f"{group}/{index}"] = np.asarray(value)
    best_meta, best_arrays = best.get_state()
    arrays.update(best_arrays)
    callbacks = _stateful_callbacks(plan, progress)
    for number, callback in enumerate(callbacks):  # large state (weight averages) as arrays, not JSON
        for index, value in enumerate(getattr(callback, "get_state_arrays", list)()):
            arrays[f"callback{number}/{index}"] = np.asarray(value)
    meta = {"progress": dataclasses.asdict(progress), "best": best_meta,
            "callbacks": [callback.get_state() for callback in callbacks]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    partial = directory / (STATE_FILE + ".partial.npz")
    np.savez(partial, **arrays)
    os.replace(partial, directory / STATE_FILE)


def load_state(directory: Path, plan, best) -> tuple[Optional[Progress], list]:
    """Restores a saved state into the plan's variables and trackers.

    Returns:
        the progress (None when nothing was saved) and, for a state saved within an epoch, the metric
        accumulators of that epoch so far (for `RestoreMetrics`).

    Raises:
        ValueError: the saved state does not fit this plan (it was saved from another recipe).
    """
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None, []
    with np.load(path) as saved:
        arrays = {key: saved[key] for key in saved.files}
    for group, variables in state_variables(plan).items():
        count = sum(1 for key in arrays if key.startswith(f"{group}/"))
        if count != len(variables):
            raise ValueError(f"{path}: the saved {group} state has {count} variables, this plan {len(variables)}")
        for index, variable in enumerate(variables):
            variable.assign(arrays[f"{group}/{index}"])
    meta = json.loads(arrays["meta"].tobytes().decode())
    best.set_state(meta["best"], {key: value for key, value in arrays.items() if key.startswith("best")})
    progress = Progress(**meta["progress"])
    for number, (callback, state) in enumerate(zip(_stateful_callbacks(plan, progress), meta["callbacks"])):
        callback.set_state(state)
        if hasattr(callback, "set_state_arrays"):
            callback.set_state_arrays(state, _group(arrays, f"callback{number}"))
    return progress, _group(arrays, "metrics")


def _group(arrays: dict, group: str) -> list:
    return [arrays[f"{group}/{i}"] for i in range(sum(1 for key in arrays if key.startswith(f"{group}/")))]


def replay_shuffles(dataset, epochs: int, plan) -> None:
    """Advances a freshly built training set's reshuffling past `epochs` epochs of `fit`.

    Making iterators may run the augmentation map ahead, which moves the augmentation layers' seed states:
    those are put back afterwards.
    """
    from tltf._keras_internals import FIT_ITERATORS_PER_EPOCH

    if epochs <= 0:
        return
    augment = state_variables(plan)["augment"]
    saved = [variable.numpy() for variable in augment]
    iterators = [iter(dataset) for _ in range(epochs * FIT_ITERATORS_PER_EPOCH)]
    del iterators
    for variable, value in zip(augment, saved):
        variable.assign(value)


def write_history_csv(path: Path, history: dict) -> None:
    """history.csv from the merged history: one row per epoch done, rewritten whole and renamed into place."""
    keys = sorted(history)
    rows = ["epoch," + ",".join(keys)]
    for epoch in range(max((len(v) for v in history.values()), default=0)):
        rows.append(",".join([str(epoch)] + [repr(history[k][epoch]) if epoch < len(history[k]) else ""
                                             for k in keys]))
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(rows) + "\n")
    os.replace(partial, path)


def append_epoch(history: dict, logs: dict) -> None:
    """Adds one epoch's logs to `history`, NaN for an entry the epoch did not log (the validation metrics of an
    epoch that did not validate), so every entry has a value per epoch."""
    recorded = len(next(iter(history.values()))) if history else 0
    for key, value in logs.items():
        history.setdefault(key, [float("nan")] * recorded).append(float(value))
    for values in history.values():
        if len(values) == recorded:
            values.append(float("nan"))


class RunRecorder(keras.callbacks.Callback):
    """Records each epoch's logs into the run's history and saves the whole state: at every epoch end, and
    every `every` optimizer steps when set. The last callback of every fit of a plan.

    Args:
        directory: where resume.npz and history.csv go.
        plan: the plan being trained.
        progress: how far it has got (updated here).
        best: the `BestModelCheckpoint` (its tracker is part of the state).
        every: also save every this many optimizer steps (None: epoch ends only).
    """

    def __init__(self, directory: Path, plan, progress: Progress, best, every=None):
        super().__init__()
        self.directory, self.plan, self.progress, self.best, self.every = directory, plan, progress, best, every
        self.offset = progress.batch  # a fit that resumes within an epoch starts counting its batches at 0
        self.epoch_start_augment = [v.numpy() for v in state_variables(plan)["augment"]]

    def on_train_batch_end(self, batch, logs=None):
        self.progress.batch = self.offset + batch + 1
        within = self.progress.batch < self.plan.steps_per_epoch  # the epoch's end saves the last one
        if self.every and within and int(self.plan.optimizer.iterations.numpy()) % self.every == 0:
            metrics = [v.numpy() for v in self.model.metrics_variables]
            save_state(self.directory, self.plan, self.progress, self.best,
                       replace={"augment": self.epoch_start_augment, "metrics": metrics})

    def on_epoch_end(self, epoch, logs=None):
        append_epoch(self.progress.history, logs or {})
        self.progress.epoch, self.progress.batch, self.offset = epoch + 1, 0, 0
        write_history_csv(self.directory / "history.csv", self.progress.history)
        save_state(self.directory, self.plan, self.progress, self.best)
        self.epoch_start_augment = [v.numpy() for v in state_variables(self.plan)["augment"]]


class RestoreMetrics(keras.callbacks.Callback):
    """Puts the saved accumulators of an epoch in progress back, after `fit` has reset them at its start."""

    def __init__(self, values: list):
        super().__init__()
        self.values = values

    def on_epoch_begin(self, epoch, logs=None):
        from tltf._keras_internals import build_compiled_metrics

        build_compiled_metrics(self.model)
        for variable, value in zip(self.model.metrics_variables, self.values):
            variable.assign(value)
        self.values = []
