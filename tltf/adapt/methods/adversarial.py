"""What the domain-adversarial methods share (dann, cdan): a domain classifier behind gradient reversal, at its
own learning rate, held still while λ is 0, and left out of the delivered classifier's optimizer state (not a
method itself)."""

from __future__ import annotations

import dataclasses
import functools

from tltf.adapt.methods.wrapped import WrappedMethod


class AdversarialMethod(WrappedMethod):
    """A wrapper with a domain classifier behind gradient reversal (`tltf.adapt.DomainAdversarialModel`)."""

    def check(self, recipe, source: str) -> None:
        from tltf.errors import RecipeError

        if recipe.adaptation.features == "head" and recipe.model.head != "mlp":
            raise RecipeError(f"{source}: adaptation.features: 'head' adapts the mlp head's hidden layer; set "
                              "model.head: mlp (with feature_extraction the frozen backbone cannot adapt)")

    def explain(self, adaptation, image_size: int) -> str:
        head, strength = adaptation.domain_head, adaptation.lambda_
        return (f"a domain classifier {head.hidden}{self.conditioning(adaptation)} at {head.lr_multiplier:g}× the "
                f"phase's rate behind gradient reversal (λ {strength.schedule}, max {strength.max:g}) on the "
                f"{adaptation.features or 'default'} features")

    def conditioning(self, adaptation) -> str:
        """What the domain classifier sees besides the features, for explain ("" for the features alone)."""
        return ""

    def around_wrapper(self, plan, context, wrapper, criteria):
        from tltf.adapt.dann import domain_head_multipliers
        from tltf.adapt.domain_accuracy import DomainAccuracyWatch
        from tltf.adapt.lambda_schedule import GradientReversalSchedule
        from tltf.train.optimizers import optimizer_restricted_to

        adaptation = context.adaptation
        strength = adaptation.lambda_
        total_steps = plan.phases[-1].end_step
        # λ is 0 until the first step at which what the reversed gradient reaches can train: the first phase
        # that trains the backbone, or step 0 when the head's features adapt.
        start = 0 if adaptation.features == "head" else next(
            (p.first_step for p in plan.phases if p.phase.train_backbone), total_steps)
        watch = DomainAccuracyWatch()
        still = domain_head_multipliers(wrapper, 0.0)
        phases = []
        for phase_plan in plan.phases:
            schedule = GradientReversalSchedule(wrapper.reversal, total_steps, strength.schedule, strength.gamma,
                                                strength.max, start)
            # After the criteria (they only add logs), the schedule writes λ into the logs, then the watch
            # reads it.
            changes = {"callbacks": (criteria, schedule, watch, *phase_plan.callbacks)}
            if phase_plan.end_step <= start:
                # λ is 0 all phase: a domain classifier trained against features that cannot answer becomes
                # certain, and the first reversed gradient from it wrecks the features (seen on PACS).
                changes["lr_multipliers"] = still
            phases.append(dataclasses.replace(phase_plan, **changes))
        return dataclasses.replace(
            plan, phases=tuple(phases),
            method_lr_multipliers=domain_head_multipliers(wrapper, adaptation.domain_head.lr_multiplier),
            # The classifier ships without the domain head, so its optimizer state must not carry one.
            retained_optimizer=functools.partial(optimizer_restricted_to, plan.model,
                                                 make_optimizer=context.make_optimizer))
