"""What the methods that train toward the target share: the unsupervised selection criteria logged every
epoch, and the epoch they choose (not a method itself)."""

from __future__ import annotations

import dataclasses

from tltf.adapt.methods.base import AdaptationMethod


class SelectedOnTarget(AdaptationMethod):
    """A method whose every epoch is judged on the target: each phase logs the selection criteria (DEV, SND)
    first, and unless `select: source_val` the delivered epoch is the one they choose.

    Subclasses say what the phases fit (`fit_toward_target`), and which callbacks they add after the criteria
    (`method_callbacks`).
    """

    def adapt(self, plan, context):
        from tltf.adapt.selection import CRITERIA

        adaptation = context.adaptation
        criteria = _selection_criteria(plan.model, context.target_domain, context.data)
        chosen = {}
        if adaptation.select != "source_val":
            chosen["monitor"], chosen["monitor_mode"] = CRITERIA[adaptation.select]
        if adaptation.select == "dev":
            # DEV chooses among the epochs it can judge; source validation while there is none (as source-only
            # does).
            chosen["monitor_eligible"], chosen["monitor_fallback"] = "dev_trusted", "val_auc"
        plan = dataclasses.replace(plan, **chosen)
        return self.fit_toward_target(plan, context, criteria)

    def fit_toward_target(self, plan, context, criteria):
        """`plan` with the criteria first among each phase's callbacks (here: the phases fit as planned)."""
        return with_phase_callbacks(plan, (criteria,))


def with_phase_callbacks(plan, first: tuple, **changes):
    """A new plan whose phases run `first` before their own callbacks, with `changes` to every phase."""
    phases = tuple(dataclasses.replace(p, callbacks=(*first, *p.callbacks), **changes) for p in plan.phases)
    return dataclasses.replace(plan, phases=phases)


def _selection_criteria(model, target_domain, data):
    from tltf.adapt.selection import SelectionCriteria

    splits = data.splits
    evaluation = target_domain.evaluation
    labelled = None if evaluation is None else (evaluation.images, evaluation.labels)
    return SelectionCriteria(model, splits.train.images, target_domain.images, (splits.val.images, splits.val.labels),
                             data.batch_size, target_labelled=labelled, seed=data.seed)
