"""Rules that read a learning-rate sweep (rates, smoothed losses) and suggest one rate; a registry by name.

Each rule is a pure function `(lrs, losses) -> rate or None` (None: the curve gives it nothing to go on).
`get(name)` returns one; `suggest_all` runs every rule on one curve, so a sweep can show where they disagree.
docs/fine-tuning.md ("Does lr-find's suggestion land near the best rate?") measures them against rate sweeps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class LearningRateRule:
    """One way of reading a sweep: its name, a sentence a user can check on the plot, and the function."""

    name: str
    description: str
    suggest: Callable[[list, list], Optional[float]]


_RULES: dict[str, LearningRateRule] = {}
DEFAULT = "steepest"  # `LearningRateFinder`'s rule unless told otherwise: a sweep of a fresh head
# `tltf lr-find`'s: the rule that fits how the swept phase starts (`for_phase`).
AUTO = "auto"
AUTO_DESCRIPTION = ("steepest for a phase that starts from a fresh head, edge for one that starts where earlier "
                    "phases left the model")


def register_rule(name: str, description: str):
    """Decorator: registers `fn(lrs, losses) -> rate or None` as the rule `name`."""

    def register(function):
        _RULES[name] = LearningRateRule(name, description, function)
        return function

    return register


def get(identifier) -> LearningRateRule:
    """The rule named `identifier` (or `identifier` itself, when already a rule)."""
    if isinstance(identifier, LearningRateRule):
        return identifier
    if identifier not in _RULES:
        raise ValueError(f"unknown learning-rate rule {identifier!r}; rules: {', '.join(sorted(_RULES))}")
    return _RULES[identifier]


def names() -> list[str]:
    return list(_RULES)


def for_phase(after_earlier_phases: bool) -> str:
    """The rule for a sweep whose model starts fresh (its head untrained: the loss has a long descent, whose
    steepest part is the rate to train at) or where earlier phases left it (it already fits: the loss is flat
    until the rate pushes it off, and the edge is what the curve can tell). docs/fine-tuning.md measured both
    against rate sweeps."""
    return "edge" if after_earlier_phases else "steepest"


def suggest_all(lrs, losses) -> dict[str, Optional[float]]:
    """Every rule's suggestion on one curve, by name."""
    return {name: rule.suggest(lrs, losses) for name, rule in _RULES.items()}


def _finite(lrs, losses):
    """The finite steps, without the sweep's first tenth (the moving average has seen only a few batches there,
    so one lucky batch can look like the lowest loss) and its last five (the loss exploding), as fastai does."""
    kept = [(float(lr), float(loss)) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    kept = kept[len(kept) // 10:len(kept) - 5] if len(kept) > 10 else kept
    return np.array([lr for lr, _ in kept]), np.array([loss for _, loss in kept])


@register_rule("valley", "half way along the longest descent of the smoothed loss (fastai's valley)")
def valley(lrs, losses) -> Optional[float]:
    """The longest subsequence of steps over which the smoothed loss keeps falling (a few noisy bumps inside it
    do not cut it short, as they would a slope) spans the rates where training makes progress; the suggestion
    sits half way between its first and last step (so half way in log rate)."""
    lrs, losses = _finite(lrs, losses)
    if len(losses) < 3:
        return None
    # longest[i]: the longest falling subsequence ending at step i; begins[i]: the step it starts at (of equally
    # long ones, the latest start: a flat stretch before the descent is not part of it).
    longest, begins = [1] * len(losses), list(range(len(losses)))
    for i in range(len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[j] + 1 >= longest[i]:
                longest[i], begins[i] = longest[j] + 1, begins[j]
    end = int(np.argmax(longest))
    if longest[end] < 3:
        return None
    return float(lrs[(begins[end] + end) // 2])


@register_rule("minimum", "a tenth of the rate at which the smoothed loss is lowest")
def minimum(lrs, losses) -> Optional[float]:
    """Where the loss bottoms out training is already about to become unstable (and the moving average lags
    behind the raw loss), so a decade below it (fastai's "minimum")."""
    lrs, losses = _finite(lrs, losses)
    lowest = int(np.argmin(losses)) if len(losses) else 0
    if lowest == 0 or losses[lowest] >= losses[0]:
        return None
    return float(lrs[lowest] / 10)


@register_rule("steepest", "where the smoothed loss falls fastest per decade of rate, before its lowest point")
def steepest(lrs, losses) -> Optional[float]:
    """The steepest fall of the smoothed loss against log rate, measured over a tenth of the sweep (so one noisy
    step does not decide it) and only before the lowest point (after it the loss rises)."""
    lrs, losses = _finite(lrs, losses)
    lowest = int(np.argmin(losses)) if len(losses) else 0
    window = max(2, len(losses) // 10)
    if lowest < window:
        return None
    log_lrs = np.log10(lrs)
    slopes = (losses[window:lowest + 1] - losses[:lowest + 1 - window]) / (log_lrs[window:lowest + 1]
                                                                            - log_lrs[:lowest + 1 - window])
    start = int(np.argmin(slopes))
    if slopes[start] >= 0:
        return None
    return float(10 ** ((log_lrs[start] + log_lrs[start + window]) / 2))


@register_rule("edge", "the last rate before the smoothed loss rises 5% above its lowest value, over 3")
def edge(lrs, losses) -> Optional[float]:
    """Where a model that already fits its data (a fine-tuning phase after the head's warm-up) starts to be
    pushed off its minimum: the loss is flat, then rises. A flat curve's lowest point is wherever the noise put
    it; the first clear rise is not. A third of that rate keeps a margin below it."""
    lrs, losses = _finite(lrs, losses)
    if len(losses) < 3:
        return None
    lowest = int(np.argmin(losses))
    above = np.flatnonzero(losses[lowest:] > 1.05 * losses[lowest])
    last = lowest + (int(above[0]) - 1 if len(above) else len(losses) - 1 - lowest)
    return float(lrs[last] / 3)

