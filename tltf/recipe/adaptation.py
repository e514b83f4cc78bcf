"""The recipe's `adaptation` section: domain-adversarial training toward an unlabelled target domain."""

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
    """The domain classifier: hidden layer sizes and dropout."""

    hidden: list[int] = [256]
    dropout: float = Field(0.5, ge=0, lt=1)


class AdaptationConfig(Section):
    """Domain-adversarial training (DANN) toward an unlabelled target domain.

    Example:
        adaptation: {method: dann, target: {source: npz, path: other-hospital.npz}, compare_source_only: true}

    Args:
        target: the target domain, any data source; its labels (if any) only evaluate.
        lambda: the λ schedule; domain_head: the domain classifier.
        features: what becomes domain-invariant (default from the strategy).
        compare_source_only: also train without adaptation at the same budget.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    method: Literal["dann"] = "dann"
    target: DataSource
    lambda_: LambdaConfig = Field(LambdaConfig(), alias="lambda")
    domain_head: DomainHeadConfig = DomainHeadConfig()
    features: Optional[Literal["backbone", "head"]] = Field(
        None, description="What becomes domain-invariant. Default: the mlp head's hidden layer with "
                          "feature_extraction (the backbone is frozen), else the backbone's features.")
    compare_source_only: bool = Field(False, description="Also train without adaptation, at the same budget.")
