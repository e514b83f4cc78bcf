"""Loading a recipe: YAML, `--set` overrides, validation, cross-field defaults and rules, error wording.

Unknown keys are errors, and every error names its YAML path:

    model.backbone: unknown backbone 'resnet5'; did you mean 'resnet50'?

Relative paths are taken relative to the current working directory, so that
`--set data.path=...` means what it says on the command line.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tltf.data.sources import SOURCE_NAMES, SOURCES
from tltf.errors import RecipeError
from tltf.recipe.schema import Recipe


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Reads, overrides and validates a recipe; raises `RecipeError` on any problem.

    Example:
        recipe = load_recipe("recipes/pneumonia.yaml", ["train.epochs=3"])

    Args:
        path: the YAML file.
        overrides: `KEY=VALUE` strings; KEY is a dotted path, VALUE is YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RecipeError(f"{path}{where}: not valid YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping with data, model and train sections")
    for override in overrides:
        apply_override(raw, override)
    drop_other_sources_keys(raw, overrides)
    raw.setdefault("name", path.stem)
    return validate_recipe(raw, source=str(path))


def apply_override(raw: dict, override: str) -> None:
    """Sets `a.b.c=value` in the nested dict `raw`; the value is parsed as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {override}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise RecipeError(f"--set {override}: {where} is a value, not a section")
        node = child
    node[parts[-1]] = value


def dotted_value(raw: dict, key: str):
    """The value at `a.b.c` in the nested dict `raw`; None where a part is missing or not a section."""
    node = raw
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def drop_other_sources_keys(raw: dict, overrides) -> None:
    """After `--set data.source=X` (or `adaptation.target.source`), drops the file's keys that source X lacks.

    So `--set data.source=npz --set data.path=f.npz` switches a medmnist recipe to an npz file. Keys that
    the overrides set themselves are kept, and still rejected if the new source has no such key.
    """
    set_keys = {override.partition("=")[0].strip() for override in overrides}
    for where in ("data", "adaptation.target"):
        if f"{where}.source" not in set_keys:
            continue
        section = dotted_value(raw, where)
        module = SOURCES.get(section.get("source")) if isinstance(section, dict) else None
        if module is None:
            continue  # validation names the unknown source
        for key in [k for k in section if k not in module.Config.model_fields and f"{where}.{k}" not in set_keys]:
            del section[key]


def validate_recipe(raw: dict, source: str = "recipe") -> Recipe:
    """Validates a recipe dict; raises `RecipeError` naming the first bad key."""
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as error:
        problems = error.errors()
        message = _describe(problems[0])
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more)"
        raise RecipeError(f"{source}: {message}") from None
    _check_consistency(recipe, source)
    return recipe


def validate_data_source(raw: dict, source: str):
    """Validates one data section (a source's `Config`, chosen by its `source` key), e.g. a command line's
    `{source: npz, path: f.npz}`; raises `RecipeError` naming `source` and the bad key, worded as for a recipe."""
    from pydantic import TypeAdapter

    from tltf.data.sources import DataSource

    try:
        return TypeAdapter(DataSource).validate_python(raw)
    except ValidationError as error:
        problem = error.errors()[0]
        raise RecipeError(f"{source}: {_describe({**problem, 'loc': ('data', *problem['loc'])})}") from None


def _check_consistency(recipe: Recipe, source: str) -> None:
    """Fills context-dependent defaults and checks rules that span sections."""
    _check_model(recipe, source)
    _check_training(recipe, source)


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
        raise RecipeError(
            f"{source}: train.head_warmup.epochs: {recipe.train.head_warmup.epochs} leaves no fine-tuning epoch "
            f"out of train.epochs={recipe.train.epochs}; make it smaller than train.epochs"
        )
    if recipe.train.layer_decay is not None and recipe.train.discriminative is not None:
        raise RecipeError(f"{source}: train.layer_decay: give layer_decay or discriminative, not both")
    if recipe.train.strategy == "feature_extraction" and (recipe.train.layer_decay or recipe.train.discriminative):
        key = "layer_decay" if recipe.train.layer_decay else "discriminative"
        raise RecipeError(f"{source}: train.{key}: has no effect with feature_extraction (the backbone is frozen); "
                          "use fine_tune, warmup_then_finetune or gradual_unfreeze")
    if recipe.adaptation is not None and recipe.adaptation.features is None:
        recipe.adaptation.features = "head" if recipe.train.strategy == "feature_extraction" else "backbone"
    if recipe.adaptation is not None:
        from tltf.adapt import methods

        methods.get(recipe.adaptation.method).check(recipe, source)
    if recipe.adaptation is not None and recipe.data.class_weight == "auto":
        raise RecipeError(f"{source}: data.class_weight: auto is not supported with adaptation yet; set it to none")
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


def _yaml_path(loc: tuple) -> str:
    # Tagged unions put the tag in the location (data.npz.path); users wrote data.path.
    parts = [str(p) for i, p in enumerate(loc)
             if not (i > 0 and loc[i - 1] in ("data", "target") and p in SOURCE_NAMES)]
    return ".".join(parts) or "(top level)"


def _describe(problem: dict) -> str:
    loc = tuple(problem["loc"])
    kind = problem["type"]
    value = problem.get("input")
    if kind == "extra_forbidden":
        parent, key = loc[:-1], loc[-1]
        allowed = _allowed_keys(parent)
        hint = did_you_mean(key, allowed) if allowed else ""
        return f"{_yaml_path(loc)}: unknown key{hint}"
    path = _yaml_path(loc)
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "union_tag_invalid":
        tag = problem['ctx']['tag']
        return f"{path}.source: unknown data source {tag!r}{did_you_mean(tag, list(SOURCE_NAMES))}"
    if kind == "union_tag_not_found":
        return f"{path}.source: required key is missing; expected one of {', '.join(SOURCE_NAMES)}"
    if kind == "literal_error":
        return f"{path}: expected {problem['ctx']['expected']}, got {value!r}"
    message = problem["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return f"{path}: {message}"
    return f"{path}: {message[0].lower() + message[1:]}, got {value!r}"


def _allowed_keys(parent: tuple) -> list[str]:
    model: Any = Recipe
    for part in parent:
        if part in SOURCE_NAMES:
            model = SOURCES[part].Config
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
    return sorted(getattr(model, "model_fields", {}))


def zero_shot_recipe(data, preset: str, templates=None, class_words=None, image_size=None,
                     overrides=()) -> Recipe:
    """The recipe `tltf zero-shot` runs: DATA, a CLIP preset with a zero-shot head, `train.strategy: zero_shot`.

    Args:
        data: a validated data-source config (`tltf.cli.common.data_source_from_text`).
        preset: the CLIP preset.
        templates: prompt templates (default `ZeroShotConfig`'s).
        class_words: the words for each class (default the data's class names).
        image_size: default the preset's own input size.
        overrides: `KEY=VALUE` strings applied last, as in `tltf fit --set`.
    """
    from tltf.models.hub import preset_image_size

    zero_shot = {"class_names": class_words} if class_words else {}
    if templates:
        zero_shot["templates"] = list(templates)
    raw = {
        "name": "zero-shot",
        "data": {**data.model_dump(mode="json", by_alias=True),
                 "image_size": image_size or preset_image_size(preset) or data.image_size},
        "model": {"backbone": "hub", "preset": str(preset), "weights": "imagenet", "head": "linear",
                  "dropout": 0.0, "zero_shot": zero_shot},
        "train": {"strategy": "zero_shot"},
    }
    for override in overrides:
        apply_override(raw, override)
    return validate_recipe(raw, source="tltf zero-shot")
