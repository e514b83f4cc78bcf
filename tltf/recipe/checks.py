"""The rules of a recipe that span its sections, and the defaults that depend on other sections.

Run on every recipe as it is loaded (`tltf.recipe.load.validate_recipe`); each rule's error names the recipe
and the key in one line. What a recipe must satisfy for a component registered above the recipe layer (an
adaptation method's own rules) is registered here by that component (`register_recipe_check`), so the recipe
layer imports nothing above it.
"""

from __future__ import annotations

import difflib

from tltf.errors import RecipeError
from tltf.recipe.schema import Recipe

# `fn(recipe, source)` raising `RecipeError`, run after the rules below.
_REGISTERED_CHECKS: list = []


def register_recipe_check(check):
    """Adds `check(recipe, source)`, run on every recipe after the rules here; returns it."""
    _REGISTERED_CHECKS.append(check)
    return check


def check_consistency(recipe: Recipe, source: str) -> None:
    """Fills context-dependent defaults and checks rules that span sections, then the registered checks."""
    _check_model(recipe, source)
    _check_training(recipe, source)
    for check in _REGISTERED_CHECKS:
        check(recipe, source)


def _check_model(recipe: Recipe, source: str) -> None:
    from tltf.models.backbones import backbone_names, get_backbone_spec
    from tltf.models.build import default_bn, default_bn_calibration, default_bn_momentum

    if recipe.model.backbone not in backbone_names():
        raise RecipeError(f"{source}: model.backbone: unknown backbone {recipe.model.backbone!r}"
                          f"{did_you_mean(recipe.model.backbone, backbone_names())}")
    spec = get_backbone_spec(recipe.model.backbone)
    if recipe.model.bn is None:
        recipe.model.bn = default_bn(recipe.model.weights)
    if recipe.model.bn_momentum is None:
        recipe.model.bn_momentum = default_bn_momentum(recipe.model.weights, recipe.model.bn)
    if recipe.model.bn_calibration is None:
        recipe.model.bn_calibration = default_bn_calibration(recipe.model.weights, recipe.model.bn)
    if recipe.data.image_size < spec.min_size:
        raise RecipeError(
            f"{source}: data.image_size: {recipe.data.image_size} px is smaller than the "
            f"{spec.min_size} px that {spec.name} accepts; set data.image_size >= {spec.min_size}"
        )
    resizing = recipe.train.progressive_resizing
    if resizing is not None and resizing.size < spec.min_size:
        raise RecipeError(f"{source}: train.progressive_resizing.size: {resizing.size} px is smaller than the "
                          f"{spec.min_size} px that {spec.name} accepts; set it to {spec.min_size} or more")
    if spec.needs_preset and not recipe.model.preset:
        raise RecipeError(f"{source}: model.preset: backbone {spec.name} needs model.preset, a KerasHub preset "
                          "name or a local preset folder")
    if recipe.model.preset and not spec.needs_preset:
        raise RecipeError(f"{source}: model.preset: only backbone hub takes a preset; set model.backbone: hub, "
                          "or remove model.preset")
    if spec.needs_preset and recipe.model.weights not in (None, "imagenet"):
        raise RecipeError(f"{source}: model.weights: backbone hub loads its weights from model.preset; set "
                          "model.weights to imagenet (the preset's weights) or none")
    zero_shot = recipe.model.zero_shot
    if recipe.train.strategy == "zero_shot" and zero_shot is None:
        raise RecipeError(f"{source}: train.strategy: zero_shot needs model.zero_shot (its prompt templates) and a "
                          "CLIP preset (model.backbone: hub)")
    if zero_shot is not None and not spec.needs_preset:
        raise RecipeError(f"{source}: model.zero_shot: needs a CLIP preset; set model.backbone: hub and "
                          "model.preset")
    if zero_shot is not None and recipe.model.head != "linear":
        raise RecipeError(f"{source}: model.zero_shot: the zero-shot classifier is a linear head; set "
                          "model.head: linear")
    if zero_shot is not None and recipe.model.weights is None:
        raise RecipeError(f"{source}: model.zero_shot: needs the preset's pretrained weights; set "
                          "model.weights: imagenet")
    if recipe.model.alpha is not None and not spec.has_alpha:
        raise RecipeError(f"{source}: model.alpha: {spec.name} has no width multiplier; remove model.alpha")


def _check_training(recipe: Recipe, source: str) -> None:
    if recipe.train.strategy == "feature_extraction" and recipe.model.weights is None:
        raise RecipeError(f"{source}: model.weights: none with feature_extraction trains a head on a frozen random "
                          "backbone, whose features carry no information; use fine_tune, or pretrained weights")
    epochs, warmup = recipe.train.epochs, recipe.train.head_warmup.epochs
    if recipe.train.strategy == "warmup_then_finetune" and epochs != "auto" and warmup >= epochs:
        given = "epochs" in recipe.train.head_warmup.model_fields_set
        value = f"{warmup}" if given else f"{warmup} (the default, which the recipe does not set)"
        fix = (f"set train.head_warmup.epochs below {epochs}, e.g. train.head_warmup.epochs={epochs - 1}"
               if epochs > 1 else "warmup_then_finetune needs train.epochs of 2 or more")
        raise RecipeError(f"{source}: train.head_warmup.epochs: {value} leaves no fine-tuning epoch out of "
                          f"train.epochs={epochs}; {fix}")
    if recipe.train.layer_decay is not None and recipe.train.discriminative is not None:
        raise RecipeError(f"{source}: train.layer_decay: give layer_decay or discriminative, not both")
    if recipe.train.strategy == "feature_extraction" and (recipe.train.layer_decay or recipe.train.discriminative):
        key = "layer_decay" if recipe.train.layer_decay else "discriminative"
        raise RecipeError(f"{source}: train.{key}: has no effect with feature_extraction (the backbone is frozen); "
                          "use fine_tune, warmup_then_finetune or gradual_unfreeze")
    if recipe.adaptation is not None and recipe.adaptation.features is None:
        recipe.adaptation.features = "head" if recipe.train.strategy == "feature_extraction" else "backbone"
    if recipe.adaptation is not None and recipe.data.class_weight == "auto":
        raise RecipeError(f"{source}: data.class_weight: auto is not supported with adaptation yet; set it to none")
    if recipe.train.augmented_views and (recipe.augment.mixup or recipe.augment.cutmix):
        raise RecipeError(f"{source}: train.augmented_views: cannot cache views of augment.mixup/cutmix, which mix "
                          "images and labels across the batch; remove one of them")
    resizing = recipe.train.progressive_resizing
    if resizing is not None and resizing.size >= recipe.data.image_size:
        raise RecipeError(f"{source}: train.progressive_resizing.size: {resizing.size} px is not below "
                          f"data.image_size ({recipe.data.image_size} px); set a smaller size")
    if resizing is not None and recipe.train.jit_compile is True:
        raise RecipeError(f"{source}: train.progressive_resizing: cannot run under XLA (train.jit_compile: true), "
                          "which fixes the image size when it compiles; set train.jit_compile: auto or false")
    if resizing is not None and recipe.adaptation is not None:
        raise RecipeError(f"{source}: train.progressive_resizing: not supported with adaptation (its methods fit "
                          "their own models); remove one of them")
    if recipe.train.distribution == "multi_worker":
        raise RecipeError(
            f"{source}: train.distribution: multi_worker is not supported: Keras 3's model.fit fails under "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585); use mirrored on one machine"
        )
    if recipe.train.jit_compile is True and recipe.train.deterministic:
        raise RecipeError(f"{source}: train.jit_compile: true cannot run with train.deterministic: true (Keras "
                          "turns XLA off under TensorFlow's op determinism); use one of them")
    if recipe.data.class_weight == "auto" and (recipe.augment.mixup or recipe.augment.cutmix):
        raise RecipeError(
            f"{source}: data.class_weight: 'auto' cannot be combined with augment.mixup/cutmix, which mix "
            "labels across classes; set one of them to none"
        )


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {', '.join(choices)}"
