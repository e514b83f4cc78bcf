"""What a run does for its recipe's `adaptation` section, around the training its plan does.

`tltf.run.fit` starts one (`start_adaptation`) before building the model, records it into the run directory,
and asks it for the adaptation results after the evaluation; the method itself (`tltf.adapt.methods`) says
what it prepares and how it changes the plan.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

from tltf.adapt import methods
from tltf.log import logger


@dataclasses.dataclass
class AdaptedRun:
    """One run's adaptation: its method, its target domain and the data it trains on.

    Args:
        recipe: the validated recipe.
        method: the `tltf.adapt.methods.AdaptationMethod` the recipe names.
        target_domain: the loaded `tltf.adapt.target.TargetData`.
        source_splits: the source as loaded.
        splits: what the classifier trains on (the source, or a method's preparation of it).
        record: the preparation's record for the run directory, or None.
        before: the pooled features of source and target before training (`record`), for the A-distance.
    """

    recipe: Any
    method: Any
    target_domain: Any
    source_splits: Any
    splits: Any
    record: Optional[Any] = None
    before: Optional[tuple] = None

    def write_record(self, work_dir: Path, model) -> None:
        """The preparation's record, and the features of the model before training."""
        from tltf.adapt.evaluation import domain_features

        if self.record is not None:
            self.record.write(work_dir, self.source_splits, self.target_domain.images)
        self.before = domain_features(model, self.splits.train.images, self.target_domain.images,
                                      self.recipe.train.batch_size)

    def results(self, plan, outcome, work_dir: Path, train_source_only: Callable) -> dict:
        """Target metrics, the source-only baseline (kept by a method that adapts only after training, else
        `train_source_only(directory)` trains it on the source as loaded), the A-distance, the selection report
        and the verdict."""
        from tltf.adapt.evaluation import adaptation_report

        recipe = self.recipe
        baseline = None
        if recipe.adaptation.compare_source_only:
            directory = work_dir / "source_only"
            baseline = kept_source_only(plan, directory) or train_source_only(directory)
        return adaptation_report(plan.model, baseline, self.splits, self.target_domain, self.before, work_dir,
                                 recipe.train.seed, recipe.train.batch_size, recipe.adaptation, outcome.history)


def start_adaptation(recipe, splits, verbose: int) -> Optional[AdaptedRun]:
    """The run's adaptation, its target loaded and its data prepared; None for a recipe without one."""
    if recipe.adaptation is None:
        return None
    from tltf.adapt.target import load_target

    target_domain = load_target(recipe.adaptation.target, recipe.data.image_size, splits.class_names)
    logger.info(target_domain.summary())
    method = methods.get(recipe.adaptation.method)
    prepared = method.prepare(recipe, splits, target_domain.images, verbose)
    return AdaptedRun(recipe, method, target_domain, splits, prepared.splits, prepared.record)


def kept_source_only(plan, directory: Path):
    """The source-only model a finishing step (AdaBN) kept before adapting, saved in `directory`; else None."""
    import keras

    kept = [step.source_only_weights for step in plan.finishers if step.source_only_weights]
    if not kept:
        return None
    baseline = keras.models.clone_model(plan.model)
    baseline.set_weights(kept[0])
    directory.mkdir(exist_ok=True)
    baseline.save(directory / "model.keras")
    return baseline
