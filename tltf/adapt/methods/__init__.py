"""Domain-adaptation methods, one module each, and the registry they register into
(`tltf.adapt.methods.base`).

Example:
    from tltf.adapt import methods
    methods.get("adabn").describe(recipe.adaptation, recipe.data.image_size)
"""

from tltf.adapt.methods import adabn, cdan, dann, mcc, translate  # noqa: F401  each registers its method
from tltf.adapt.methods.base import AdaptationContext, AdaptationMethod, Prepared, get, names, register_method
from tltf.recipe.checks import register_recipe_check


@register_recipe_check
def check_adaptation(recipe, source: str) -> None:
    """The recipe's adaptation method's own rules (`AdaptationMethod.check`), when it adapts."""
    if recipe.adaptation is not None:
        get(recipe.adaptation.method).check(recipe, source)


__all__ = ["AdaptationContext", "AdaptationMethod", "Prepared", "check_adaptation", "get", "names", "register_method"]
