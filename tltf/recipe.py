"""The recipe: typed, validated configuration for one tltf run.

A recipe is YAML read with `yaml.safe_load` and validated into the pydantic
models below. Unknown keys are errors, and every error names its YAML path:

    model.backbone: unknown backbone 'resnet5'; did you mean 'resnet50'?

Relative paths are taken relative to the current working directory, so that
`--set data.path=...` means what it says on the command line.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tltf.errors import RecipeError
from tltf.models.backbones import backbone_names, get_backbone_spec

SOURCE_NAMES = ("npz", "directory", "csv", "medmnist", "tfds")
STRATEGIES = ("feature_extraction", "fine_tune", "warmup_then_finetune", "gradual_unfreeze")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------------- data


class _DataCommon(_Section):
    image_size: int = Field(224, ge=1, description="Square input size in pixels.")
    class_names: Optional[list[str]] = Field(
        None, description="Names for label ids 0..C-1 (npz, medmnist, tfds); folders name their own."
    )
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="Held out of train, stratified and seeded, when the source has no val split."
    )
    class_weight: Literal["auto", "none"] = "none"


class NpzSource(_DataCommon):
    """MedMNIST layout: `{split}_images`, `{split}_labels` for train/val/test."""

    source: Literal["npz"]
    path: Path


class DirectorySource(_DataCommon):
    """Class subfolders, optionally under `train/`, `val/` and `test/`."""

    source: Literal["directory"]
    path: Path


class CsvSource(_DataCommon):
    """A CSV file with an image-path column and a label column."""

    source: Literal["csv"]
    path: Path
    image_column: str = "image"
    label_column: str = "label"
    split_column: Optional[str] = Field(None, description="Column holding train/val/test, if any.")


class MedmnistSource(_DataCommon):
    """A MedMNIST dataset: `ROOT/NAME.npz`, downloaded (MD5-checked) when missing."""

    source: Literal["medmnist"]
    name: str
    root: Path = Path("~/.medmnist")
    url: Optional[str] = Field(None, description="Mirror to download from instead of Zenodo.")
    md5: Optional[str] = None


class TfdsSource(_DataCommon):
    """A TensorFlow Datasets dataset, read from `data_dir`."""

    source: Literal["tfds"]
    name: str
    data_dir: Optional[Path] = None
    splits: dict[Literal["train", "val", "test"], str] = {"train": "train", "test": "test"}
    image_key: str = "image"
    label_key: str = "label"
    download: bool = True


DataSource = Annotated[
    Union[NpzSource, DirectorySource, CsvSource, MedmnistSource, TfdsSource],
    Field(discriminator="source"),
]


# -------------------------------------------------------------------- augment


class RandAugmentConfig(_Section):
    num_ops: int = Field(2, ge=1)
    factor: float = Field(0.5, gt=0, le=1)


class AugmentConfig(_Section):
    """Training-only augmentation, all Keras-core preprocessing layers."""

    zoom: float = Field(0.0, ge=0, lt=1, description="RandomZoom factor (± fraction).")
    translate: float = Field(0.0, ge=0, lt=1, description="RandomTranslation factor.")
    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none"
    rotation: float = Field(0.0, ge=0, le=0.5, description="RandomRotation factor, a fraction of 2π.")
    contrast: float = Field(0.0, ge=0, lt=1, description="RandomContrast factor.")
    randaugment: Optional[RandAugmentConfig] = None
    mixup: Optional[float] = Field(None, gt=0, description="MixUp alpha.")
    cutmix: Optional[float] = Field(None, gt=0, description="CutMix alpha.")

    @property
    def enabled(self) -> bool:
        return any(
            [self.zoom, self.translate, self.flip != "none", self.rotation, self.contrast,
             self.randaugment, self.mixup, self.cutmix]
        )


# ---------------------------------------------------------------------- model


class ModelConfig(_Section):
    backbone: str = "resnet50"
    weights: Optional[str] = Field("imagenet", description="imagenet, none, or a path to a weights file.")
    alpha: Optional[float] = Field(None, gt=0, description="MobileNet width multiplier.")
    head: Literal["linear", "mlp"] = "linear"
    hidden_units: list[int] = Field([256], description="Hidden layer sizes of the mlp head.")
    dropout: float = Field(0.2, ge=0, lt=1)
    bn: Optional[Literal["frozen", "train"]] = Field(
        None, description="frozen: BatchNorm always in inference mode. Default: frozen with pretrained weights, else train."
    )
    bn_momentum: Optional[float] = Field(
        None, gt=0, lt=1,
        description="Moving-average momentum of the backbone's BatchNorm. Default: the backbone's own with "
                    "pretrained weights; 0.9 when BN trains from scratch.",
    )

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, name: str) -> str:
        if name not in backbone_names():
            raise ValueError(f"unknown backbone {name!r}{_did_you_mean(name, backbone_names())}")
        return name

    @field_validator("weights", mode="before")
    @classmethod
    def _normalise_weights(cls, value: Any) -> Optional[str]:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        if isinstance(value, str) and value.lower() == "imagenet":
            return "imagenet"
        return value


# ---------------------------------------------------------------------- train


class EarlyStoppingConfig(_Section):
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)


class HeadWarmupConfig(_Section):
    epochs: int = Field(3, ge=1, description="Head-only epochs before the backbone is unfrozen.")
    lr: float = Field(1e-3, gt=0)


class DiscriminativeConfig(_Section):
    """Discriminative learning rates: a rate for the head and one per group of backbone units."""

    head: float = Field(gt=0, description="The head's learning rate.")
    groups: Optional[list[Annotated[float, Field(gt=0)]]] = Field(
        None, min_length=1, description="One rate per contiguous group of units, stem first.")
    range: Optional[tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]] = Field(
        None, description="[low, high], spread geometrically from the stem to the last unit.")

    @model_validator(mode="after")
    def _one_of(self):
        if (self.groups is None) == (self.range is None):
            raise ValueError("give exactly one of groups: [rates...] or range: [low, high]")
        return self


class GradualConfig(_Section):
    every: int = Field(2, ge=1, description="Epochs between two unfreezings.")
    start_epochs: int = Field(1, ge=0, description="Head-only epochs before the first unit is unfrozen.")


class TrainConfig(_Section):
    strategy: Literal["feature_extraction", "fine_tune", "warmup_then_finetune", "gradual_unfreeze"] = "fine_tune"
    epochs: int = Field(20, ge=1, description="Total epochs over all phases.")
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-4, gt=0, description="Base learning rate (the fine-tuning rate).")
    weight_decay: float = Field(0.004, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0, description="Linear learning-rate warm-up at the start of each phase.")
    head_warmup: HeadWarmupConfig = HeadWarmupConfig()
    seed: int = 42
    early_stopping: Optional[EarlyStoppingConfig] = None
    feature_cache: bool = Field(True, description="Cache frozen-backbone features when augmentation is off.")
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = Field(
        "float32", description="Keras dtype policy: mixed_float16 on GPUs, mixed_bfloat16 on TPUs and recent CPUs."
    )
    distribution: Literal["default", "mirrored", "multi_worker"] = Field(
        "default", description="tf.distribute strategy; batch_size is the global batch."
    )
    unit: Literal["block", "stage"] = Field("block", description="What one unit of the block map is.")
    layer_decay: Optional[float] = Field(
        None, gt=0, le=1, description="Layer-wise lr decay: lr × decay^(units from the head).")
    discriminative: Optional[DiscriminativeConfig] = None
    gradual: GradualConfig = GradualConfig()
    intent_check: bool = Field(True, description="Check frozen weights and BatchNorm at each phase's first step.")


class LambdaConfig(_Section):
    schedule: Literal["ganin", "constant"] = "ganin"
    gamma: float = Field(10.0, gt=0)
    max: float = Field(1.0, ge=0)


class DomainHeadConfig(_Section):
    hidden: list[int] = [256]
    dropout: float = Field(0.5, ge=0, lt=1)


class AdaptationConfig(_Section):
    """Domain-adversarial training (DANN) toward an unlabelled target domain."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    method: Literal["dann"] = "dann"
    target: DataSource
    lambda_: LambdaConfig = Field(LambdaConfig(), alias="lambda")
    domain_head: DomainHeadConfig = DomainHeadConfig()
    features: Optional[Literal["backbone", "head"]] = Field(
        None, description="What becomes domain-invariant. Default: the mlp head's hidden layer with "
                          "feature_extraction (the backbone is frozen), else the backbone's features.")
    compare_source_only: bool = Field(False, description="Also train without adaptation, at the same budget.")


class EvaluateConfig(_Section):
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the AUC confidence interval.")


# --------------------------------------------------------------------- recipe


class Recipe(_Section):
    name: Optional[str] = None
    data: DataSource
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    adaptation: Optional[AdaptationConfig] = None

    def to_yaml(self) -> str:
        """The fully resolved recipe as YAML, `data.source` first."""
        resolved = self.model_dump(mode="json", by_alias=True)
        resolved["data"] = {"source": resolved["data"].pop("source"), **resolved["data"]}
        if resolved.get("adaptation"):
            target = resolved["adaptation"]["target"]
            resolved["adaptation"]["target"] = {"source": target.pop("source"), **target}
        return yaml.safe_dump(resolved, sort_keys=False)


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


def _check_consistency(recipe: Recipe, source: str) -> None:
    """Fills context-dependent defaults and checks rules that span sections."""
    spec = get_backbone_spec(recipe.model.backbone)
    if recipe.model.bn is None:
        # Without pretrained statistics, frozen BN would normalise with the
        # initial moving averages forever and the model predicts a constant.
        recipe.model.bn = "frozen" if recipe.model.weights else "train"
    if recipe.model.bn_momentum is None and recipe.model.bn == "train" and not recipe.model.weights:
        # keras.applications use momentum 0.99-0.999, tuned for ImageNet's millions of steps; after a few
        # hundred steps the moving statistics are still mostly their initial values and a model
        # trained from scratch predicts a constant at inference.
        recipe.model.bn_momentum = 0.9
    if recipe.data.image_size < spec.min_size:
        raise RecipeError(
            f"{source}: data.image_size: {recipe.data.image_size} px is smaller than the "
            f"{spec.min_size} px that {spec.name} accepts; set data.image_size >= {spec.min_size}"
        )
    if recipe.model.alpha is not None and not spec.has_alpha:
        raise RecipeError(f"{source}: model.alpha: {spec.name} has no width multiplier; remove model.alpha")
    if recipe.train.strategy == "warmup_then_finetune" and recipe.train.head_warmup.epochs >= recipe.train.epochs:
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
    if recipe.adaptation is not None and recipe.adaptation.features == "head" and recipe.model.head != "mlp":
        raise RecipeError(f"{source}: adaptation.features: 'head' adapts the mlp head's hidden layer; set "
                          "model.head: mlp (with feature_extraction the frozen backbone cannot adapt)")
    if recipe.adaptation is not None and recipe.data.class_weight == "auto":
        raise RecipeError(f"{source}: data.class_weight: auto is not supported with adaptation yet; set it to none")
    if recipe.train.distribution == "multi_worker":
        raise RecipeError(
            f"{source}: train.distribution: multi_worker is not supported: Keras 3's model.fit fails under "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585); use mirrored on one machine"
        )
    if recipe.data.class_weight == "auto" and (recipe.augment.mixup or recipe.augment.cutmix):
        raise RecipeError(
            f"{source}: data.class_weight: 'auto' cannot be combined with augment.mixup/cutmix, which mix "
            "labels across classes; set one of them to none"
        )


def _did_you_mean(word: str, choices: list[str]) -> str:
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
        hint = _did_you_mean(key, allowed) if allowed else ""
        return f"{_yaml_path(loc)}: unknown key{hint}"
    path = _yaml_path(loc)
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "union_tag_invalid":
        return f"{path}.source: unknown data source {problem['ctx']['tag']!r}{_did_you_mean(problem['ctx']['tag'], list(SOURCE_NAMES))}"
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
            model = {
                "npz": NpzSource, "directory": DirectorySource, "csv": CsvSource,
                "medmnist": MedmnistSource, "tfds": TfdsSource,
            }[part]
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
