"""Domain adaptation: DANN, CDAN+E, minimum class confusion, AdaBN, CycleGAN translation; unsupervised model
selection; a verdict."""

from tltf.adapt import methods  # registers the methods, and their rules with the recipe checks
from tltf.adapt.base import AdaptationModel
from tltf.adapt.batch_norm import adapt_batch_norm
from tltf.adapt.cdan import ConditionalAdversarialModel, MultilinearMap
from tltf.adapt.confusion import MinimumClassConfusionModel, minimum_class_confusion
from tltf.adapt.cycle_gan import CycleGan
from tltf.adapt.dann import DomainAdversarialModel, domain_head_multipliers
from tltf.adapt.domain_accuracy import DomainAccuracyWatch
from tltf.adapt.lambda_schedule import GradientReversalSchedule, ganin_lambda
from tltf.adapt.selection import SelectionCriteria, dev_risk, soft_neighborhood_density
from tltf.adapt.verdict import adaptation_verdict

__all__ = [
    "AdaptationModel", "ConditionalAdversarialModel", "CycleGan", "DomainAccuracyWatch", "DomainAdversarialModel",
    "GradientReversalSchedule", "MinimumClassConfusionModel", "MultilinearMap", "SelectionCriteria", "adapt_batch_norm",
    "adaptation_verdict", "dev_risk", "domain_head_multipliers", "ganin_lambda", "methods", "minimum_class_confusion",
    "soft_neighborhood_density",
]
