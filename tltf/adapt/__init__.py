"""Domain adaptation: domain-adversarial training (DANN) with a gradient-reversal layer."""

from tltf.adapt.dann import DomainAdversarialModel
from tltf.adapt.lambda_schedule import GradientReversalSchedule, ganin_lambda

__all__ = ["DomainAdversarialModel", "GradientReversalSchedule", "ganin_lambda"]
