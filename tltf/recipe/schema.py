"""The recipe's schema: typed, documented configuration for one tltf run, and nothing else.

Pure pydantic models: no model code, no file reading. Loading (YAML,
`--set`, cross-field defaults and rules, error wording) is `tltf.recipe.load`.
The `data` section is one of the registered sources' configs
(`tltf.data.sources`).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import yaml
from pydantic import Field, field_validator

from tltf.config import Section
from tltf.data.sources import DataSource
from tltf.models.families import DEFAULT_BACKBONE
from tltf.models.zero_shot import DEFAULT_TEMPLATES
from tltf.recipe.adaptation import AdaptationConfig
from tltf.recipe.training import TrainConfig

# ----------------------------------------------------------------------- data




# -------------------------------------------------------------------- augment


class RandAugmentConfig(Section):
    """RandAugment: `num_ops` random operations per image at strength `factor`.

    Example:
        augment: {randaugment: {num_ops: 2, factor: 0.5}}
    """

    num_ops: int = Field(2, ge=1)
    factor: float = Field(0.5, gt=0, le=1)


class AugmentConfig(Section):
    """Training-only augmentation, all Keras-core preprocessing layers.

    Example:
        augment: {zoom: 0.1, flip: horizontal, rotation: 0.05, contrast: 0.1, mixup: 0.2}

    Every field defaults to off; see each field's description.
    """

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


class LoraConfig(Section):
    """Low-rank adapters on the backbone: only they, the head and BatchNorm (per `bn`) train.

    Example:
        model: {backbone: mobilenet_v2, lora: {rank: 8, alpha: 16, blocks: [stage4, stage5]}}
    """

    rank: int = Field(8, ge=1, description="The adapters' rank.")
    alpha: Optional[float] = Field(None, gt=0, description="The update is A·B·alpha/rank. Default: rank.")
    blocks: Optional[list[str]] = Field(None, description="Block or stage names (`tltf explain` lists them). "
                                                          "Default: the whole backbone.")
    pattern: Optional[str] = Field(None, description="A regular expression the layer name must contain.")


class ZeroShotConfig(Section):
    """A CLIP zero-shot head: the class prompts' text embeddings as the head's weights.

    Example:
        model: {backbone: hub, preset: presets/clip, zero_shot: {templates: ["a chest x-ray showing {}"]}}
    """

    templates: list[str] = Field(list(DEFAULT_TEMPLATES), min_length=1,
                                 description="Prompt templates, `{}` for the class name; their embeddings are "
                                             "averaged.")
    class_names: Optional[list[str]] = Field(None, description="The words for each class in the prompts, in label "
                                                               "order. Default: the data's class names.")


class ModelConfig(Section):
    """The network: a registered backbone, its weights, a new head and the BatchNorm policy.

    Example:
        model: {backbone: mobilenet_v2, alpha: 0.35, weights: imagenet, head: mlp, hidden_units: [128]}

    Args:
        backbone: a registered backbone name (`tltf.models.backbone_names()`), or `hub` for a KerasHub one.
        preset: with `backbone: hub`, a KerasHub preset name or a local preset folder.
        weights: `imagenet`, `none`, or a path to a weights file. With `hub`: `imagenet` (any value but none)
            loads the preset's own pretrained weights, `none` builds its architecture with random ones.
        alpha: MobileNet width multiplier.
        head: `linear` or `mlp`; `hidden_units` and `dropout` shape it.
        bn: `frozen` or `train`; filled in from `weights` when not given.
        bn_momentum: the backbone BatchNorm momentum; filled in (0.9) when BN trains from scratch.
        bn_calibration: batches that recompute BatchNorm statistics before each validation; filled in (16)
            when BN trains from scratch.
        lora: low-rank adapters on the backbone (`rank`, `alpha`, `blocks`, `pattern`).
        zero_shot: with a CLIP preset, the head starts as CLIP's zero-shot classifier (`templates`,
            `class_names`); `train.strategy: zero_shot` evaluates it without training.
    """

    backbone: str = DEFAULT_BACKBONE
    preset: Optional[str] = Field(None, description="With backbone hub: a KerasHub preset name or local folder.")
    weights: Optional[str] = Field("imagenet", description="imagenet, none, or a path to a weights file.")
    alpha: Optional[float] = Field(None, gt=0, description="MobileNet width multiplier.")
    head: Literal["linear", "mlp"] = "linear"
    hidden_units: list[int] = Field([256], description="Hidden layer sizes of the mlp head.")
    dropout: float = Field(0.2, ge=0, lt=1)
    bn: Optional[Literal["frozen", "train"]] = Field(
        None,
        description="frozen: BatchNorm always in inference mode. Default: frozen with pretrained weights, else train."
    )
    bn_momentum: Optional[float] = Field(
        None, gt=0, lt=1,
        description="Moving-average momentum of the backbone's BatchNorm. Default: the backbone's own with "
                    "pretrained weights; 0.9 when BN trains from scratch.",
    )
    lora: Optional[LoraConfig] = None
    zero_shot: Optional[ZeroShotConfig] = None
    bn_calibration: Optional[int] = Field(
        None, ge=0,
        description="Training batches whose BatchNorm statistics replace the moving averages before each "
                    "validation (tltf.callbacks.BatchNormCalibration); 0 turns it off. Default: 16 when BN "
                    "trains from scratch, else 0.",
    )

    @field_validator("weights", mode="before")
    @classmethod
    def _normalise_weights(cls, value: Any) -> Optional[str]:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        if isinstance(value, str) and value.lower() == "imagenet":
            return "imagenet"
        return value


class EvaluateConfig(Section):
    """Evaluation settings.

    Example:
        evaluate: {bootstrap: 1000, calibrate: temperature, tta: [flip]}
    """

    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the AUC confidence interval.")
    calibrate: Literal["none", "temperature", "platt"] = Field(
        "none", description="Fit a calibration on val after training and fold it into the model: temperature "
        "scaling, or (two classes) Platt scaling; metrics.json keeps the ECE before it.")
    tta: list[Literal["flip", "vflip"]] = Field(
        default_factory=list, description="Test-time augmentation: the delivered model averages its probabilities "
        "over the image and these views (flip: left-right mirror, vflip: top-bottom), inside model.keras and the "
        "export. Calibration, if any, is fitted on the single view first.")


# --------------------------------------------------------------------- recipe


class Recipe(Section):
    """One run: the data, augmentation, model, training, evaluation and (optionally) adaptation sections.

    Example:
        recipe = tltf.load_recipe("recipes/pneumonia-mobilenet.yaml", ["train.epochs=3"])
        recipe.train.strategy          # "warmup_then_finetune"
        print(recipe.to_yaml())        # every default filled in

    Args:
        name: the run's name (default: the recipe file's stem).
        data: the data source (`source: npz | directory | csv | medmnist | tfds` and its keys).
        augment: training-only augmentation.
        model: backbone, weights, head and BatchNorm policy.
        train: strategy, epochs, optimizer, rates and the GPU path.
        evaluate: evaluation settings.
        adaptation: domain adaptation toward an unlabelled target, or None.
    """

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
