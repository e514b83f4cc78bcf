"""Domain-adaptation methods as variants of a training plan.

`adapt_plan` rewrites a plan assembled for the source alone. The adversarial
methods (dann, cdan) and minimum class confusion (mcc) fit a wrapper around
the classifier on zipped `((source, labels), target)` batches; the
adversarial ones also get a λ schedule and a faster domain classifier, and
the delivered classifier keeps only its own optimizer state. AdaBN trains
like the source alone and re-estimates BatchNorm statistics on the target as
the plan's finishing step. Every method but AdaBN logs the unsupervised
selection criteria each epoch and, unless `select: source_val`, delivers the
epoch they choose. The trainer runs the result like any other plan.
"""

from __future__ import annotations

import functools

from tltf.adapt.dann import domain_head_multipliers
from tltf.adapt.selection import CRITERIA
from tltf.train.optimizers import optimizer_restricted_to


class SourceAndTargetBatches:
    """Fits an adaptation wrapper: source batches with labels zipped with unlabelled target batches.

    Args:
        wrapper: the adaptation model (`tltf.adapt.AdaptationModel`).
        data: the source's `tltf.train.targets.LabelledData`.
        target_images: uint8 `[N,S,S,3]` target-domain images (no labels).
    """

    caches_features = False

    def __init__(self, wrapper, data, target_images):
        self.model = wrapper
        self.data = data
        self.target_images = target_images

    def compile(self, optimizer, jit_compile="auto") -> None:
        self.model.compile(optimizer=optimizer, jit_compile=jit_compile)

    def datasets(self):
        import tensorflow as tf

        from tltf.data.pipeline import make_unlabelled_dataset

        train_ds, val_ds = self.data.datasets()
        target_ds = make_unlabelled_dataset(self.target_images, self.data.batch_size, augmenter=self.data.augmenter,
                                            seed=self.data.seed)
        return tf.data.Dataset.zip((train_ds, target_ds)), val_ds


def adapt_plan(plan, adaptation, target_domain, data, make_optimizer):
    """Turns `plan` into `adaptation.method`'s training toward `target_domain`; returns the model each phase fits.

    Args:
        plan: a `TrainingPlan` assembled for the source alone.
        adaptation: the recipe's `adaptation` section.
        target_domain: the loaded `tltf.adapt.target.TargetData`.
        data: the source's `LabelledData`.
        make_optimizer: builds a fresh optimizer like `plan.optimizer`.
    """
    if adaptation.method == "adabn":
        return _batch_norm_from_target(plan, adaptation, target_domain, data)
    criteria = _selection_criteria(plan.model, target_domain, data)
    for phase_plan in plan.phases:
        phase_plan.callbacks = [criteria, *phase_plan.callbacks]
    if adaptation.select != "source_val":
        plan.monitor, plan.monitor_mode = CRITERIA[adaptation.select]
    if adaptation.select == "dev":
        # DEV chooses among the epochs it can judge; source validation while there is none (as source-only does).
        plan.monitor_eligible, plan.monitor_fallback = "dev_trusted", "val_auc"
    if adaptation.method == "translate":
        return plan.model
    wrapper = _wrapper(plan.model, adaptation, data.seed)
    target = SourceAndTargetBatches(wrapper, data, target_domain.images)
    for phase_plan in plan.phases:
        phase_plan.fit_target = target
    if adaptation.method in ("dann", "cdan"):
        start = _schedule_reversal(plan, adaptation, wrapper)
        plan.method_lr_multipliers = domain_head_multipliers(wrapper, adaptation.domain_head.lr_multiplier)
        for phase_plan in plan.phases:
            if phase_plan.end_step <= start:
                # λ is 0 all phase: a domain classifier trained against features that cannot answer becomes
                # certain, and the first reversed gradient from it wrecks the features (seen on PACS).
                phase_plan.lr_multipliers = domain_head_multipliers(wrapper, 0.0)
        # The classifier ships without the domain head, so its optimizer state must not carry one.
        plan.retained_optimizer = functools.partial(optimizer_restricted_to, plan.model, make_optimizer=make_optimizer)
    return wrapper


def describe_adaptation(adaptation, image_size: int) -> str:
    """One line on what a recipe's `adaptation` section will do (`image_size`: the recipe's), for `tltf explain`."""
    target = adaptation.target
    where = getattr(target, "path", None) or getattr(target, "name", None) or ""
    text = f"adaptation: {adaptation.method} toward {target.source} {where}".rstrip() + ": "
    if adaptation.method in ("dann", "cdan"):
        head, strength = adaptation.domain_head, adaptation.lambda_
        conditioned = ""
        if adaptation.method == "cdan":
            conditioned = " on features ⊗ predictions" + (", entropy-weighted" if adaptation.entropy_conditioning
                                                          else "")
        text += (f"a domain classifier {head.hidden}{conditioned} at {head.lr_multiplier:g}× the phase's rate "
                 f"behind gradient reversal (λ {strength.schedule}, max {strength.max:g}) on the "
                 f"{adaptation.features or 'default'} features")
    elif adaptation.method == "mcc":
        text += (f"minimum class confusion on the target predictions (weight {adaptation.mcc.weight:g}, "
                 f"temperature {adaptation.mcc.temperature:g})")
    elif adaptation.method == "adabn":
        text += (f"after training, BatchNorm statistics from {adaptation.adabn.batches} batches of target images, "
                 "matched to the source's")
    else:
        t = adaptation.translate
        text += (f"first a CycleGAN ({t.filters} filters, {t.residual_blocks} residual blocks, {t.epochs} epochs at "
                 f"{t.image_size or image_size} px) translates the source's train and val into the target's look; "
                 "test stays the source's")
    text += f"; epoch chosen by {adaptation.chooses_epoch_by}"
    if adaptation.compare_source_only:
        text += ("; the model before AdaBN (the source-only model) judges it" if adaptation.method == "adabn" else
                 "; a source-only run at the same budget judges it")
    return text


def _wrapper(model, adaptation, seed: int):
    from tltf.adapt.cdan import ConditionalAdversarialModel
    from tltf.adapt.confusion import MinimumClassConfusionModel
    from tltf.adapt.dann import DomainAdversarialModel

    head = adaptation.domain_head
    if adaptation.method == "dann":
        return DomainAdversarialModel(model, head.hidden, head.dropout, features=adaptation.features, name="dann")
    if adaptation.method == "cdan":
        return ConditionalAdversarialModel(model, head.hidden, head.dropout, features=adaptation.features,
                                           entropy_conditioning=adaptation.entropy_conditioning, seed=seed,
                                           name="cdan")
    return MinimumClassConfusionModel(model, adaptation.mcc.weight, adaptation.mcc.temperature, name="mcc")


def _schedule_reversal(plan, adaptation, wrapper) -> int:
    """λ is 0 until the first step at which what the reversed gradient reaches can train (the first phase that
    trains the backbone, or step 0 when the head's features adapt), then follows the recipe's schedule; returns
    that step."""
    from tltf.adapt.domain_accuracy import DomainAccuracyWatch
    from tltf.adapt.lambda_schedule import GradientReversalSchedule

    watch = DomainAccuracyWatch()
    strength = adaptation.lambda_
    total_steps = plan.phases[-1].end_step
    start = 0 if adaptation.features == "head" else next(
        (p.first_step for p in plan.phases if p.phase.train_backbone), total_steps)
    for phase_plan in plan.phases:
        schedule = GradientReversalSchedule(wrapper.reversal, total_steps, strength.schedule, strength.gamma,
                                            strength.max, start)
        # After the criteria (they only add logs), the schedule writes λ into the logs, then the watch reads it.
        criteria, *others = phase_plan.callbacks
        phase_plan.callbacks = [criteria, schedule, watch, *others]
    return start


def _selection_criteria(model, target_domain, data):
    from tltf.adapt.selection import SelectionCriteria

    splits = data.splits
    evaluation = target_domain.evaluation
    labelled = None if evaluation is None else (evaluation.images, evaluation.labels)
    return SelectionCriteria(model, splits.train.images, target_domain.images, (splits.val.images, splits.val.labels),
                             data.batch_size, target_labelled=labelled, seed=data.seed)


def _batch_norm_from_target(plan, adaptation, target_domain, data):
    from tltf.adapt.batch_norm import BatchNormAdaptation

    plan.finishers = [BatchNormAdaptation(target_domain.images, data.splits.train.images, data.batch_size,
                                          adaptation.adabn.batches, data.seed)]
    return plan.model
