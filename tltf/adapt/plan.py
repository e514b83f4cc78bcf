"""Domain-adversarial training (DANN) as a variant of a training plan.

`adapt_domain_adversarially` rewrites a plan assembled for the source alone:
every phase fits the `DomainAdversarialModel` wrapper on zipped
`((source, labels), target)` batches and gets a λ schedule, and the delivered
classifier keeps only its own optimizer state. The trainer runs the result
like any other plan.
"""

from __future__ import annotations

import functools


class DomainAdversarialTarget:
    """Fits the domain-adversarial wrapper: source batches with labels zipped with unlabelled target batches.

    Args:
        wrapper: the `tltf.adapt.DomainAdversarialModel`.
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


def adapt_domain_adversarially(plan, adaptation, target_domain, data, make_optimizer):
    """Turns every phase of `plan` into domain-adversarial training toward `target_domain`; returns the wrapper.

    λ is 0 until the first step at which what the reversed gradient reaches can
    train (the first phase that trains the backbone, or step 0 when the head's
    features adapt), then follows the recipe's schedule to the end of training.

    Args:
        plan: a `TrainingPlan` assembled for the source alone.
        adaptation: the recipe's `adaptation` section (domain head, λ, features).
        target_domain: the loaded `tltf.adapt.target.TargetData`.
        data: the source's `LabelledData`.
        make_optimizer: builds a fresh optimizer like `plan.optimizer`.
    """
    from tltf.adapt import DomainAdversarialModel, GradientReversalSchedule
    from tltf.train.optimizers import optimizer_restricted_to

    head = adaptation.domain_head
    wrapper = DomainAdversarialModel(plan.model, head.hidden, head.dropout, features=adaptation.features, name="dann")
    target = DomainAdversarialTarget(wrapper, data, target_domain.images)
    strength = adaptation.lambda_
    total_steps = plan.phases[-1].end_step
    start = 0 if adaptation.features == "head" else next(
        (p.first_step for p in plan.phases if p.phase.train_backbone), total_steps)
    for phase_plan in plan.phases:
        phase_plan.fit_target = target
        schedule = GradientReversalSchedule(wrapper.reversal, total_steps, strength.schedule, strength.gamma,
                                            strength.max, start)
        phase_plan.callbacks = [schedule, *phase_plan.callbacks]
    # The classifier ships without the domain head, so its optimizer state must not carry one.
    plan.retained_optimizer = functools.partial(optimizer_restricted_to, plan.model, make_optimizer=make_optimizer)
    return wrapper
