"""Training: the plan, the trainer that executes it, and the Keras pieces it uses.

The plan is assembled from a recipe by `tltf.assemble` and rendered by `tltf.explain`.
"""

from tltf.train.plan import PhasePlan, Segment, TrainingPlan
from tltf.train.trainer import Trainer, TrainingOutcome

__all__ = ["PhasePlan", "Segment", "Trainer", "TrainingOutcome", "TrainingPlan"]
