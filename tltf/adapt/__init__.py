"""Domain adaptation: gradient reversal (tltf.layers.GradientReversal) and its λ schedule."""

from tltf.adapt.lambda_schedule import GradientReversalSchedule, ganin_lambda

__all__ = ["GradientReversalSchedule", "ganin_lambda"]
