"""The recipe: typed, validated configuration for one tltf run.

`tltf.recipe.schema` holds the sections (pure pydantic); `tltf.recipe.load`
reads YAML, applies `--set` overrides, fills cross-field defaults and words
the errors.
"""

from tltf.data.sources import DataSource
from tltf.recipe.adaptation import AdaptationConfig, DomainHeadConfig, LambdaConfig
from tltf.recipe.load import apply_override, load_recipe, validate_recipe
from tltf.recipe.schema import AugmentConfig, EvaluateConfig, ModelConfig, RandAugmentConfig, Recipe
from tltf.recipe.training import (
    DiscriminativeConfig,
    EarlyStoppingConfig,
    GradualConfig,
    HeadWarmupConfig,
    HealthConfig,
    TrainConfig,
)

__all__ = [
    "AdaptationConfig", "AugmentConfig", "DataSource", "DiscriminativeConfig", "DomainHeadConfig",
    "EarlyStoppingConfig", "EvaluateConfig", "GradualConfig", "HeadWarmupConfig", "HealthConfig", "LambdaConfig",
    "ModelConfig", "RandAugmentConfig", "Recipe", "TrainConfig", "apply_override", "load_recipe", "validate_recipe",
]
