"""AdaBN: train on the source alone, then take the BatchNorm statistics from the target, matched to the
source's (`tltf.adapt.batch_norm`), as the plan's finishing step."""

from __future__ import annotations

import dataclasses

from tltf.adapt.methods.base import AdaptationMethod, register_method


@register_method
class AdaBN(AdaptationMethod):
    """BatchNorm statistics from the target after training; the model before them is the source-only baseline.

    Example:
        adaptation: {method: adabn, target: {source: npz, path: scanner-b.npz}, adabn: {batches: 32}}
    """

    name = "adabn"
    title = "AdaBN"
    baseline_text = "the model before AdaBN (the source-only model) judges it"

    def chooses_epoch_by(self, adaptation) -> str:
        return "source_val"  # its statistics come after training: no epoch is adapted

    def explain(self, adaptation, image_size: int) -> str:
        return (f"after training, BatchNorm statistics from {adaptation.adabn.batches} batches of target images, "
                "matched to the source's")

    def adapt(self, plan, context):
        from tltf.adapt.batch_norm import BatchNormAdaptation

        data = context.data
        finisher = BatchNormAdaptation(context.target_domain.images, data.splits.train.images, data.batch_size,
                                       context.adaptation.adabn.batches, data.seed)
        return dataclasses.replace(plan, finishers=(*plan.finishers, finisher))
