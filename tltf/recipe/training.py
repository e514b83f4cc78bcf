"""The recipe's `train` section: strategy, budget, optimizer, per-unit rates and the GPU path."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from tltf.config import Section
from tltf.train.spec import DiscriminativeRates, ResizingRule, StopRule, TrainingSpec

# train.stop: auto's rule: the shortest patience that gave up no validation AUC in 9 full-budget runs (1%, 5% and
# 25% of PneumoniaMNIST's labels, 3 seeds; docs/time-to-quality.md).
STOP_PATIENCE = 0.3
STOP_MIN_PATIENCE_STEPS = 0
# Fewest optimizer steps between two validations: on a few dozen images an epoch is one step, and validating
# after each would take longer than training (docs/time-to-quality.md).
VALIDATE_EVERY_STEPS = 8


class EarlyStoppingConfig(Section):
    """Stop a phase when val AUC has not improved by `min_delta` for `patience` epochs (rounded up to whole
    validations when `validate_every_steps` spaces them)."""

    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)


class StopConfig(Section):
    """Stop the run once val AUC has not improved for a patience that scales with the budget; the best epoch is
    delivered. The defaults are `train.stop: auto`'s (docs/time-to-quality.md has the measurements).

    Example:
        train: {epochs: auto, stop: {patience: 0.3}}
    """

    patience: float = Field(STOP_PATIENCE, gt=0, le=1,
                            description="Epochs without a better val AUC before the run stops, as a fraction of "
                                        "the run's epochs.")
    min_patience_steps: int = Field(STOP_MIN_PATIENCE_STEPS, ge=0,
                                    description="The least patience, in optimizer steps.")


class ProgressiveResizingConfig(Section):
    """Progressive resizing: the last phase's first epochs train on images shrunk to `size` px, the rest (and every
    validation) at `data.image_size`. Convolutional backbones only (a ViT's position table has one size).

    Example:
        train: {progressive_resizing: {size: 64, epochs: 0.5}}   # 96 px recipe: first half of fine-tuning at 64
    """

    size: int = Field(ge=1, description="The smaller square size in pixels, below data.image_size.")
    epochs: float = Field(0.5, gt=0, lt=1, description="The fraction of the last phase's epochs at `size` (its "
                                                       "last epoch always trains at full size).")


class HeadWarmupConfig(Section):
    """The head-only phase of `warmup_then_finetune`."""

    epochs: int = Field(3, ge=1, description="Head-only epochs before the backbone is unfrozen.")
    lr: float = Field(1e-3, gt=0)


class DiscriminativeConfig(Section):
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


class GradualConfig(Section):
    """`gradual_unfreeze`: head-only epochs first, then one more unit every `every` epochs, top down."""

    every: int = Field(2, ge=1, description="Epochs between two unfreezings.")
    start_epochs: int = Field(1, ge=0, description="Head-only epochs before the first unit is unfrozen.")


class HealthConfig(Section):
    """Watching a run for divergence, collapse and stalls (`tltf.callbacks.TrainingHealth`).

    Example:
        train: {health: {stop: false}}     # report, but let a failing phase run to its end
    """

    stop: bool = Field(True, description="Stop a phase that diverges or collapses (the best checkpoint is kept).")
    collapse_epochs: int = Field(2, ge=1, description="Epochs of val AUC at 0.5 that make a collapse.")
    divergence_factor: float = Field(10.0, gt=1,
                                     description="An epoch loss above this × the first step's is divergence.")
    stall_epochs: int = Field(5, ge=1, description="Epochs without a better val AUC that make a stall (reported).")


class L2SPConfig(Section):
    """L2-SP: `alpha/2·‖w − w₀‖²` on the pretrained backbone parameters, `beta/2·‖w‖²` on the new ones."""

    alpha: float = Field(0.01, ge=0)
    beta: float = Field(0.01, ge=0)


class RegularizationConfig(Section):
    """Penalties added to the loss."""

    l2_sp: Optional[L2SPConfig] = None


class TrainConfig(Section):
    """How the network trains: the strategy, its budget, the optimizer and rates, and the GPU path.

    Example:
        train: {strategy: warmup_then_finetune, epochs: auto, lr: 1.0e-4, schedule: cosine, layer_decay: 0.8}

    Args:
        strategy: feature_extraction, fine_tune, warmup_then_finetune or gradual_unfreeze; or zero_shot, which
            trains nothing (a CLIP zero-shot head, `model.zero_shot`, evaluated as it is).
        epochs: total epochs over all phases, or `auto`: enough epochs for `min_steps` optimizer steps (at most
            `max_epochs`), so a small dataset is not starved.
        lr: the base (fine-tuning) rate; `head_warmup.lr` is the head's in a warm-up. Unset: a default for
            what the strategy trains (`tltf.train.phases.base_lr`).
        layer_decay, discriminative: per-unit rates (one of them), over the block map's `unit`s.
        stop: with `epochs: auto` (and no adaptation), stop once validation has stopped improving (`StopConfig`);
            `never` runs the whole budget.
        precision, jit_compile, distribution: the dtype policy, XLA, and the tf.distribute strategy.
    """

    strategy: Literal["feature_extraction", "fine_tune", "warmup_then_finetune", "gradual_unfreeze",
                      "zero_shot"] = "fine_tune"
    epochs: Union[int, Literal["auto"]] = Field(
        "auto", description="Total epochs over all phases, or auto: enough for min_steps optimizer steps.")
    min_steps: int = Field(1000, ge=1, description="epochs auto: at least this many optimizer steps in all.")
    max_epochs: int = Field(100, ge=1, description="epochs auto: never more epochs than this.")
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: Optional[float] = Field(
        None, gt=0, description="Base learning rate (the fine-tuning rate). Default: 1e-3 for a new head on frozen "
                                "features (feature_extraction) and from scratch (weights none), 1e-4 to fine-tune "
                                "a pretrained backbone.")
    weight_decay: float = Field(0.004, ge=0)
    regularization: RegularizationConfig = RegularizationConfig()
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0, description="Linear learning-rate warm-up at the start of each phase.")
    head_warmup: HeadWarmupConfig = HeadWarmupConfig()
    seed: int = 42
    stop: Union[Literal["auto", "never"], StopConfig] = Field(
        "auto", description="auto: with epochs auto and no adaptation, stop once val AUC has stopped improving "
                            "(the best epoch is delivered); never: run the whole budget; or {patience, "
                            "min_patience_steps} (adapted runs too: judged by what chooses their epoch).")
    early_stopping: Optional[EarlyStoppingConfig] = None
    validate_every_steps: int = Field(
        VALIDATE_EVERY_STEPS, ge=1, description="Validate (and judge the best epoch) at the end of an epoch once at "
                                                "least this many optimizer steps have run since the last "
                                                "validation, and at the end of every phase; 1: every epoch.")
    feature_cache: bool = Field(True, description="Augmentation off: compute what stays frozen once (a frozen "
                                  "backbone's features, a gradual phase's never-unfrozen lowest blocks).")
    augmented_views: Optional[int] = Field(
        None, ge=1, description="With augmentation on, what stays frozen through a phase (the backbone of "
                                "feature_extraction and the head warm-up; the lowest blocks a gradual_unfreeze "
                                "phase never unfreezes) is computed once for this many augmented views of every "
                                "training image, and each epoch trains the rest on one view per image, drawn at "
                                "random: an approximation of augmenting every epoch. None: such phases run "
                                "uncached.")
    progressive_resizing: Optional[ProgressiveResizingConfig] = None
    ema: Optional[float] = Field(
        None, ge=0, lt=1, description="Average the weights as training goes (exponential moving average with this "
                                      "momentum per step, e.g. 0.99: about the last 100 steps); every validation, "
                                      "the best epoch and the delivered model use the average "
                                      "(tltf.callbacks.WeightAveraging); BatchNorm statistics are recomputed for it "
                                      "when BatchNorm trains.")
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16", "auto"] = Field(
        "float32", description="Keras dtype policy: mixed_float16 on GPUs, mixed_bfloat16 on TPUs and recent CPUs; "
                               "auto chooses for the device (on CPUs by timing the network once, remembered).")
    jit_compile: Union[bool, Literal["auto"]] = Field(
        "auto", description="Compile the train step with XLA. auto: Keras' rule (on a GPU, when every layer "
                            "supports it, without tf.distribute or op determinism).")
    distribution: Literal["default", "mirrored", "multi_worker"] = Field(
        "default", description="tf.distribute strategy; batch_size is the global batch."
    )
    unit: Literal["block", "stage"] = Field("block", description="What one unit of the block map is.")
    layer_decay: Optional[float] = Field(
        None, gt=0, le=1, description="Layer-wise lr decay: lr × decay^(units from the head).")
    discriminative: Optional[DiscriminativeConfig] = None
    gradual: GradualConfig = GradualConfig()
    intent_check: bool = Field(True, description="Check frozen weights and BatchNorm at each phase's first step.")
    health: HealthConfig = HealthConfig()
    checkpoint_every: Optional[int] = Field(
        None, ge=1, description="Also save the training state every N optimizer steps (default: at epoch ends "
                                "only); a killed run then loses at most N steps.")
    deterministic: bool = Field(
        False, description="Repeatable runs on the same machine and library versions: TensorFlow op determinism and "
                            "sequential augmentation. Slower; the default is fast.")

    def spec(self, adapting: bool = False) -> TrainingSpec:
        """What `tltf.train` reads of this section, as plain values (`adapting`: the recipe has `adaptation`)."""
        d = self.discriminative
        rates = None if d is None else DiscriminativeRates(
            d.head, None if d.groups is None else tuple(d.groups), None if d.range is None else tuple(d.range))
        return TrainingSpec(
            strategy=self.strategy, epochs=self.epochs, min_steps=self.min_steps, max_epochs=self.max_epochs,
            lr=self.lr, warmup_epochs=self.warmup_epochs, schedule=self.schedule,
            head_warmup_epochs=self.head_warmup.epochs, head_warmup_lr=self.head_warmup.lr,
            unfreeze_every=self.gradual.every, unfreeze_start_epochs=self.gradual.start_epochs, unit=self.unit,
            layer_decay=self.layer_decay, discriminative=rates, optimizer=self.optimizer,
            weight_decay=self.weight_decay, batch_size=self.batch_size, distribution=self.distribution,
            stop=self._stop_rule(adapting), validate_every_steps=self.validate_every_steps,
            progressive_resizing=self._resizing_rule())

    def _resizing_rule(self) -> Optional[ResizingRule]:
        resizing = self.progressive_resizing
        return None if resizing is None else ResizingRule(resizing.size, resizing.epochs)

    def _stop_rule(self, adapting: bool) -> Optional[StopRule]:
        """`stop` as a rule: auto stops only a budget tltf chose (epochs auto), and not an adapted run (the rule
        was measured on supervised runs; an adapted run's epoch may be chosen on the unlabelled target)."""
        if self.stop == "never" or (self.stop == "auto" and (self.epochs != "auto" or adapting)):
            return None
        config = StopConfig() if self.stop == "auto" else self.stop
        return StopRule(config.patience, config.min_patience_steps)

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs(cls, value: Any):
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"expected a number of epochs (1 or more) or auto, got {value!r}")
