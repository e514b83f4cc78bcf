"""What a domain-adaptation method is, and the registry that holds them.

Each method (AdaBN, DANN, CDAN+E, MCC, translate) is one class in its own module of this package, registered
under the name a recipe's `adaptation.method` gives. A run asks the registry (`get`) and calls the method's
hooks; nothing else in tltf branches on the method's name. Adding a method is one module and its test (and its
settings in the recipe's `adaptation` section, if it has any).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

_METHODS: dict[str, "AdaptationMethod"] = {}


def register_method(cls):
    """Class decorator: registers one instance of an `AdaptationMethod` subclass under its `name`."""
    _METHODS[cls.name] = cls()
    return cls


def get(name: str) -> "AdaptationMethod":
    """The method a recipe's `adaptation.method` names.

    Raises:
        KeyError: naming the registered methods.
    """
    if name not in _METHODS:
        raise KeyError(f"unknown adaptation method {name!r}; registered: {', '.join(names())}")
    return _METHODS[name]


def names() -> list[str]:
    return sorted(_METHODS)


@dataclasses.dataclass(frozen=True)
class AdaptationContext:
    """What a method needs to turn a source-only plan into its own.

    Args:
        adaptation: the recipe's `adaptation` section.
        target_domain: the loaded `tltf.adapt.target.TargetData`.
        data: the source's `tltf.train.targets.LabelledData`.
        make_optimizer: builds a fresh optimizer like the plan's.
    """

    adaptation: Any
    target_domain: Any
    data: Any
    make_optimizer: Callable


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a method made of the data before the model is built: the splits to train on, and a record.

    Args:
        splits: the splits the classifier trains and is evaluated on.
        record: an object with `write(work_dir, source_splits, target_images)` that writes what the
            preparation made into the run directory, or None.
    """

    splits: Any
    record: Optional[Any] = None


class AdaptationMethod:
    """One domain-adaptation method: what explain says of it, what it prepares, how it changes a plan.

    Example:
        @register_method
        class Nothing(AdaptationMethod):
            name = "nothing"

            def explain(self, adaptation, image_size):
                return "nothing changes"

    Args:
        name: the recipe's `adaptation.method`.
        title: how the report names the adapted model.
        baseline_text: how explain says the adapted model is judged when `compare_source_only` is on.
    """

    name = ""
    title = "adapted"
    baseline_text = "a source-only run at the same budget judges it"

    def check(self, recipe, source: str) -> None:
        """Raises `RecipeError` (naming `source` and the key) when the recipe cannot run this method."""

    def chooses_epoch_by(self, adaptation) -> str:
        """The rule that delivers the epoch (`adaptation.select`, unless the method fixes it)."""
        return adaptation.select

    def explain(self, adaptation, image_size: int) -> str:
        """What the method does, in the words of `tltf explain`'s adaptation line."""
        raise NotImplementedError

    def describe(self, adaptation, image_size: int) -> str:
        """One line on what a recipe's `adaptation` section will do (`image_size`: the recipe's)."""
        target = adaptation.target
        where = getattr(target, "path", None) or getattr(target, "name", None) or ""
        text = f"adaptation: {self.name} toward {target.source} {where}".rstrip() + ": "
        text += self.explain(adaptation, image_size)
        text += f"; epoch chosen by {self.chooses_epoch_by(adaptation)}"
        if adaptation.compare_source_only:
            text += "; " + self.baseline_text
        return text

    def prepare(self, recipe, splits, target_images, verbose: int) -> Prepared:
        """The data the classifier trains on (the source's own, unless the method changes it)."""
        return Prepared(splits)

    def adapt(self, plan, context: AdaptationContext):
        """A new `TrainingPlan`: `plan` (assembled for the source alone) as this method trains it."""
        raise NotImplementedError
