"""The recipe's `adaptation` section: training toward an unlabelled target domain (DANN, CDAN, MCC, AdaBN, or
translating the source into the target's look)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import ConfigDict, Field

from tltf.config import Section
from tltf.data.sources import DataSource


class LambdaConfig(Section):
    """The gradient-reversal strength λ: Ganin's ramp to `max` (steepness `gamma`) or constant."""

    schedule: Literal["ganin", "constant"] = "ganin"
    gamma: float = Field(10.0, gt=0)
    max: float = Field(1.0, ge=0)


class DomainHeadConfig(Section):
    """The domain classifier (dann, cdan): hidden layer sizes, dropout, its learning rate relative to the phase's."""

    hidden: list[int] = [256]
    dropout: float = Field(0.5, ge=0, lt=1)
    lr_multiplier: float = Field(10.0, gt=0, description="The domain classifier learns this many times faster "
                                 "than the phase's rate, as in the reference implementations: a slower one "
                                 "loses the adversarial game and ends below chance.")


class ConfusionConfig(Section):
    """Minimum class confusion (mcc): the loss weight and the probability temperature."""

    weight: float = Field(1.0, ge=0)
    temperature: float = Field(2.5, gt=0)


class BatchNormConfig(Section):
    """AdaBN (adabn): how many batches of target images re-estimate the BatchNorm statistics."""

    batches: int = Field(32, ge=1)


class TranslateConfig(Section):
    """translate: the CycleGAN that brings the source into the target's look before training (seeded by
    `train.seed`)."""

    image_size: Optional[int] = Field(None, ge=8, multiple_of=2, description="The CycleGAN's image size (default "
                                      "data.image_size); translated images are resized back to data.image_size. "
                                      "Smaller is much faster.")
    epochs: int = Field(10, ge=1, description="Passes over the larger of the source's training images and the "
                                               "target's images.")
    batch_size: int = Field(16, ge=1)
    filters: int = Field(16, ge=1, description="The generators' and discriminators' first-layer channels.")
    residual_blocks: int = Field(2, ge=0)
    lr: float = Field(2.0e-4, gt=0)
    cycle_weight: float = Field(10.0, ge=0)
    identity_weight: float = Field(5.0, ge=0)


class AdaptationConfig(Section):
    """Training toward an unlabelled target domain, and the checks that say whether it helped.

    Example:
        adaptation: {target: {source: npz, path: other-hospital.npz}}   # adabn

    Args:
        method: adabn (the default: BatchNorm statistics from the target, matched to the source's; no extra
            training), dann, cdan (conditional, entropy-weighted), mcc (minimum class confusion) or translate (a
            CycleGAN translates the source's train and val images into the target's look, then the classifier
            trains on them as usual; test stays the source's own).
        target: the target domain, any data source; its labels (if any) only evaluate.
        lambda: the λ schedule (dann, cdan); domain_head: the domain classifier (dann, cdan).
        features: what becomes domain-invariant (dann, cdan; default from the strategy).
        entropy_conditioning: cdan's entropy weighting (CDAN+E).
        mcc: minimum class confusion's weight and temperature; adabn: its batches; translate: the CycleGAN.
        select: which epoch is delivered: dev (Deep Embedded Validation's target-risk estimate), snd
            (soft neighbourhood density) or source_val (source validation AUC).
        compare_source_only: also train without adaptation at the same budget, and judge the adapted model
            against it (`adaptation.verdict`).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    method: Literal["dann", "cdan", "mcc", "adabn", "translate"] = Field(
        "adabn", description="adabn by default: the one method that gained target accuracy on all three shifts "
                             "measured, and the cheapest (docs/domain-adaptation.md).")
    target: DataSource
    lambda_: LambdaConfig = Field(LambdaConfig(), alias="lambda")
    domain_head: DomainHeadConfig = DomainHeadConfig()
    features: Optional[Literal["backbone", "head"]] = Field(
        None, description="What becomes domain-invariant. Default: the mlp head's hidden layer with "
                          "feature_extraction (the backbone is frozen), else the backbone's features.")
    entropy_conditioning: bool = Field(True, description="cdan: weight the domain loss by prediction certainty.")
    mcc: ConfusionConfig = ConfusionConfig()
    adabn: BatchNormConfig = BatchNormConfig()
    translate: TranslateConfig = TranslateConfig()
    select: Literal["dev", "snd", "source_val"] = Field(
        "dev", description="Which epoch is delivered: the lowest DEV target-risk estimate, the highest soft "
                           "neighbourhood density, or the best source validation AUC. adabn always uses source_val "
                           "(its statistics come after training).")
    compare_source_only: bool = Field(True, description="Also train without adaptation, at the same budget, and "
                                                        "judge the adapted model against it (adaptation.verdict).")
