"""The trainer's collaborators, as typed protocols: what a plan hands the trainer besides plain values.

A `FitTarget` is what a phase fits (`tltf.train.targets`, or an adaptation method's own); a `Finisher` is a
step on the delivered model once its best epoch is restored (AdaBN's); a `StatefulCallback` is a phase callback
whose trackers carry over from a resumed partial epoch into the rest of the phase.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable


@runtime_checkable
class FitTarget(Protocol):
    """A Keras model to compile and fit, and the `(train, val)` datasets to fit it on.

    Args:
        model: the model `fit` is called on.
        caches_features: whether it fits the head on cached backbone features.
        cached: what it computes once before fitting, for the plan ("" nothing).
    """

    model: Any
    caches_features: bool
    cached: str

    def compile(self, optimizer, jit_compile="auto", steps_per_execution=None) -> None: ...

    def datasets(self) -> tuple: ...


@runtime_checkable
class Finisher(Protocol):
    """A step on the delivered model once its best epoch is restored, before it is saved.

    Args:
        source_only_weights: the weights it found (the model before the step), when it keeps them: the
            source-only baseline of a method that adapts only after training. None otherwise.
    """

    source_only_weights: Optional[list]

    def __call__(self, model) -> None: ...


@runtime_checkable
class StatefulCallback(Protocol):
    """A callback whose trackers are carried over between two `fit` calls of one phase."""

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...
