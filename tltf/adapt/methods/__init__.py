"""Domain-adaptation methods, one module each, and the registry they register into
(`tltf.adapt.methods.base`).

Example:
    from tltf.adapt import methods
    methods.get("adabn").describe(recipe.adaptation, recipe.data.image_size)
"""

from tltf.adapt.methods import adabn, cdan, dann, mcc, translate  # noqa: F401  each registers its method
from tltf.adapt.methods.base import AdaptationContext, AdaptationMethod, Prepared, get, names, register_method

__all__ = ["AdaptationContext", "AdaptationMethod", "Prepared", "get", "names", "register_method"]
