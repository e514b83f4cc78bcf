"""Loading a recipe: YAML, `--set` overrides, validation, cross-field defaults and rules, error wording.

Unknown keys are errors, and every error names its YAML path:

    model.backbone: unknown backbone 'resnet5'; did you mean 'resnet50'?

Relative paths are taken relative to the current working directory, so that
`--set data.path=...` means what it says on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tltf.data.sources import SOURCE_NAMES, SOURCES
from tltf.errors import RecipeError
from tltf.recipe.checks import check_consistency, did_you_mean
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
    check_consistency(recipe, source)
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
