"""Recipe → `TrainingPlan`: the one place that reads the whole recipe to decide how a run trains.

`describe_plan` gives what `tltf explain` prints (phases, units, effective
rates) without data or weights; `assemble_training` gives the same plan with
everything the trainer needs to execute it: the fitted model and datasets of
each phase, its callbacks, and the optimizer. Strategies are ways of filling
the phases (`tltf.train.phases`); an adaptation method returns its own plan
from the source-only one (`tltf.adapt.methods`). Plans are immutable: each
step makes a new one.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from tltf.models.anatomy import backbone_of
from tltf.models.blocks import HEAD, BlockMap
from tltf.task import Task
from tltf.train.layerwise import unit_multipliers_checked, variable_multipliers
from tltf.train.phases import base_lr, budget_text, phase_schedule, plan_phases, stop_patience, validation_interval
from tltf.train.plan import PhasePlan, TrainingPlan
from tltf.train.segments import param_counts, phase_segments, replica_warnings, unit_decays

# Training steps per call when a head fits on cached features (`HeadOnFeatures`).
HEAD_STEPS_PER_EXECUTION = 16
# Batches that recompute BatchNorm statistics for averaged weights (train.ema) when BatchNorm trains.
BN_CALIBRATION_FOR_AVERAGES = 16


def training_spec(recipe):
    """The recipe's `train` section as `tltf.train` reads it (what `stop: auto` means depends on `adaptation`)."""
    return recipe.train.spec(adapting=recipe.adaptation is not None)


def model_from_recipe(recipe, task: Task, weights="recipe"):
    """`tltf.build_model` with the recipe's `model` section and `data.image_size` (weights None: structure only)."""
    from tltf.models.build import build_model

    m = recipe.model
    model = build_model(
        m.backbone, num_classes=task.num_classes, image_size=recipe.data.image_size,
        weights=m.weights if weights == "recipe" else weights, alpha=m.alpha, head=m.head,
        hidden_units=tuple(m.hidden_units), dropout=m.dropout, bn=m.bn, bn_momentum=m.bn_momentum,
        preset=m.preset,
    )
    if m.zero_shot is not None and weights == "recipe":
        from tltf.models.zero_shot import init_zero_shot_head

        init_zero_shot_head(model, m.preset, m.zero_shot.class_names or task.class_names, m.zero_shot.templates)
    if m.lora is not None:
        _add_lora(model, m.lora)
    return model


def _add_lora(model, lora) -> None:
    """`model.lora`: adapters on the chosen blocks (block or stage names) or every eligible backbone layer."""
    from tltf.errors import RecipeError
    from tltf.log import logger
    from tltf.models.lora import enable_backbone_lora

    layers = None
    if lora.blocks:
        maps = [BlockMap.of(model, unit) for unit in ("block", "stage")]
        chosen = next((m for m in maps if set(lora.blocks) <= set(m.names) - {HEAD}), None)
        if chosen is None:
            blocks, stages = (", ".join(n for n in m.names if n != HEAD) for m in maps)
            raise RecipeError(f"model.lora.blocks: {lora.blocks} are not all blocks or all stages of this backbone "
                              f"(blocks: {blocks}; stages: {stages})")
        layers = [layer for name in lora.blocks for layer in chosen.layers_of(model, name)]
    report = enable_backbone_lora(model, lora.rank, lora.alpha, layers, lora.pattern)
    if not report.layers:
        raise RecipeError("model.lora: no layer of the chosen blocks or pattern can take LoRA adapters")
    logger.info(report.summary())


def recipe_precision(recipe, measure: bool = True):
    """The recipe's `train.precision`, with `auto` resolved for this machine (`tltf.train.precision`).

    Args:
        recipe: a validated recipe.
        measure: time both precisions now if nothing is remembered (a minute or two); False: say it is not
            timed yet and choose float32 (what `tltf explain` does).
    """
    from tltf.train.precision import choose_precision

    make_model = functools.partial(model_from_recipe, recipe, weights=None) if measure else None
    return choose_precision(recipe.train.precision, *timed_network(recipe), make_model)


def timed_network(recipe) -> tuple:
    """`(network, batch size, image size)`: what the remembered precision timings of a recipe are keyed by."""
    m = recipe.model
    backbone = f"{m.backbone} {m.preset}" if m.preset else m.backbone  # two KerasHub presets are two networks
    return f"{backbone}|alpha {m.alpha}", recipe.train.batch_size, recipe.data.image_size


def check_weights(recipe) -> None:
    """Finds the backbone's weights now (a local file, the Keras cache, or a download) and checks they fit.

    Called before any data is read, by fit, explain and validate alike, so a
    recipe whose weights cannot be had fails in seconds with one line.

    Raises:
        WeightsError: naming the file and what to do.
    """
    from tltf.models.backbones import create_backbone

    m = recipe.model
    if m.weights is not None:
        create_backbone(m.backbone, recipe.data.image_size, weights=m.weights, alpha=m.alpha, preset=m.preset)


def describe_plan(recipe, model, steps_per_epoch: int, warnings=()) -> TrainingPlan:
    """The plan's phases, units and effective learning rates: what explain prints and fit executes.

    Args:
        recipe: the validated recipe.
        model: the classifier (built with or without weights; its structure is what counts).
        steps_per_epoch: optimizer steps in one epoch of the training split.
        warnings: advice found elsewhere (about the data), listed first.
    """
    train, pretrained = training_spec(recipe), recipe.model.weights is not None
    block_map = BlockMap.of(model, train.unit)
    units = unit_multipliers_checked(train, block_map.names, base_lr(train, pretrained))
    phases = plan_phases(train, steps_per_epoch, pretrained)
    schedule = phase_schedule(phases, steps_per_epoch)
    boundaries = schedule.boundaries()
    decays = unit_decays(block_map, model, train)
    backbone_units = [name for name in block_map.names if name != HEAD]
    phase_plans = []
    for index, phase in enumerate(phases):
        segments = phase_segments(phase, boundaries[index], steps_per_epoch, schedule, block_map, units,
                                  backbone_units, recipe.model.bn, decays)
        trainable, frozen = param_counts(model, phase.train_backbone)
        phase_plans.append(PhasePlan(phase, boundaries[index], boundaries[index + 1], tuple(segments), trainable,
                                     frozen))
    notes = [] if pretrained or train.strategy == "fine_tune" else [
        f"model.weights is none: nothing pretrained to protect, so the backbone trains from the first epoch "
        f"(train.strategy {train.strategy} runs as fine_tune)"]
    regularization, advice = _regularization(recipe.train, model)
    return TrainingPlan(tuple(phase_plans), steps_per_epoch,
                        (*warnings, *notes, *advice, *replica_warnings(train)),
                        lr_multipliers=variable_multipliers(block_map.path_to_unit(), units), schedule=schedule,
                        budget=budget_text(train, steps_per_epoch, pretrained), regularization=regularization,
                        validate_every=validation_interval(train, steps_per_epoch),
                        stop_patience=stop_patience(train, steps_per_epoch, pretrained))


def _regularization(train, model) -> tuple[str, list]:
    """`train.regularization` attached to `model` (L2-SP's w₀ is the model's current weights): the plan's line on
    it, and advice."""
    sp = train.regularization.l2_sp
    if sp is None:
        return "", []
    from tltf.regularizers import apply_l2_sp

    summary = apply_l2_sp(model, sp.alpha, sp.beta)
    advice = []
    if train.optimizer == "adamw" and train.weight_decay > 0:
        advice.append(f"train.regularization.l2_sp pulls the backbone toward its pretrained weights while "
                      f"train.weight_decay {train.weight_decay:g} (AdamW) pulls every weight toward zero; set "
                      f"train.weight_decay: 0 to regularise toward the starting point only")
    return summary.text(), advice


def assemble_training(recipe, model, splits, target_domain=None, verbose: int = 2) -> TrainingPlan:
    """The executable plan for `model` on `splits` (and, with `recipe.adaptation`, toward `target_domain`).

    Call it inside the strategy scope the model was built in: it builds the optimizer.

    Example:
        plan = assemble_training(recipe, model, splits)
        Trainer().run(plan, Path("run"))
    """
    from tltf.data.pipeline import build_augmenter
    from tltf.train.callbacks import WeightAveraging
    from tltf.train.progressive_resizing import with_progressive_resizing
    from tltf.train.targets import LabelledData

    train = recipe.train
    task = Task(splits.class_names)
    described = describe_plan(recipe, model, math.ceil(len(splits.train) / train.batch_size))
    data = LabelledData(splits, task, train.batch_size, build_augmenter(recipe.augment, train.seed),
                        _sample_weights(recipe, splits), train.seed)
    caching = _cache_choice(recipe, model, task, data, verbose)
    health = _health_monitor(train.health)
    averaging = None if train.ema is None else WeightAveraging(train.ema)  # one average across phases
    phases = []
    for phase_plan in described.phases:
        target, note = caching.for_phase(phase_plan)
        phases.append(dataclasses.replace(
            phase_plan, feature_cache_note=note, fit_target=target,
            callbacks=tuple(_phase_callbacks(recipe, phase_plan.phase, model, health, splits.train,
                                             described.validate_every, averaging))))
    make_optimizer = functools.partial(_optimizer, training_spec(recipe), train.precision, described.schedule,
                                       described.lr_multipliers)
    plan = dataclasses.replace(described, phases=tuple(phases), model=model, fitted_model=model, task=task,
                               health=health, checkpoint_every=train.checkpoint_every, jit_compile=train.jit_compile,
                               optimizer=make_optimizer())
    if recipe.adaptation is not None:
        from tltf.adapt.methods import AdaptationContext, get

        context = AdaptationContext(recipe.adaptation, target_domain, data, make_optimizer)
        plan = get(recipe.adaptation.method).adapt(plan, context)
    plan = with_progressive_resizing(_with_stop_when_done(plan), training_spec(recipe).progressive_resizing, data)
    # Slots for every variable any phase trains, built once: the head's moments then carry over
    # when the backbone is unfrozen.
    backbone_of(model).trainable = any(p.phase.train_backbone for p in plan.phases)
    plan.optimizer.build(plan.fitted_model.trainable_variables)
    return plan


def _cache_choice(recipe, model, task, data, verbose: int):
    """What each phase fits: the recipe's cache settings as a `CacheChoice`."""
    from tltf.data.pipeline import build_augmenter
    from tltf.train.caching import CacheChoice

    train = recipe.train
    # One step per call when something must see every step: a mid-epoch save, the weight average.
    head_steps = 1 if train.checkpoint_every or train.ema is not None else HEAD_STEPS_PER_EXECUTION
    return CacheChoice(model, task, data, BlockMap.of(model, train.unit), augmented=recipe.augment.enabled,
                       enabled=train.feature_cache, adapted=recipe.adaptation is not None, head_steps=head_steps,
                       verbose=verbose, views=train.augmented_views,
                       make_augmenter=functools.partial(build_augmenter, recipe.augment))


def _optimizer(spec, precision: str, schedule, multipliers):
    from tltf.train.distribution import wrap_for_precision
    from tltf.train.optimizers import build_optimizer

    return wrap_for_precision(build_optimizer(spec, schedule, multipliers), precision)


def _sample_weights(recipe, splits):
    """Class weights as per-image sample weights: Keras ignores fit(class_weight=...) with tf.data in some versions."""
    if recipe.data.class_weight != "auto":
        return None
    from tltf.data.splits import class_weights

    return class_weights(splits.train.labels, splits.num_classes)[splits.train.labels]


def _health_monitor(config):
    from tltf.train.callbacks import TrainingHealth

    return TrainingHealth("val_auc", config.collapse_epochs, config.divergence_factor, config.stall_epochs,
                          config.stop)


def _with_stop_when_done(plan):
    """`plan` whose last phase (the one that trains longest) ends once the epoch that will be delivered is
    `plan.stop_patience` epochs old; judged by what chooses that epoch (an adaptation method may choose on the
    target)."""
    from tltf.train.callbacks import StopWhenDone

    if plan.stop_patience is None or not plan.phases:
        return plan
    # The callback counts the epochs it is shown a validation in.
    stop = StopWhenDone(monitor=plan.monitor, mode=plan.monitor_mode,
                        patience=math.ceil(plan.stop_patience / plan.validate_every), eligible=plan.monitor_eligible)
    last = plan.phases[-1]
    return dataclasses.replace(plan, phases=(*plan.phases[:-1], dataclasses.replace(
        last, callbacks=(*last.callbacks, stop))))


def _phase_callbacks(recipe, phase, model, health, train_split, validate_every: int, averaging=None) -> list:
    """The callbacks a phase's recipe settings call for: weight averaging, BatchNorm calibration, unfreezing,
    intent check, health, early stopping."""
    from tltf.train.callbacks import BatchNormCalibration, EarlyStopping, GradualUnfreezing, IntentCheck

    # First: the averaged weights are in the model before calibration, validation and the best checkpoint.
    chosen = [] if averaging is None else [averaging]
    # Averaged weights need BatchNorm statistics of their own when BatchNorm trains.
    batches = recipe.model.bn_calibration or (BN_CALIBRATION_FOR_AVERAGES if averaging is not None else 0)
    if phase.train_backbone and recipe.model.bn == "train" and batches:
        # A seeded sample of unaugmented training images; calibration runs the classifier itself, not the
        # model being fitted (an adaptation wrapper takes other inputs).
        size = min(len(train_split), batches * recipe.train.batch_size)
        sample = np.sort(np.random.default_rng(recipe.train.seed).permutation(len(train_split))[:size])
        chosen.append(BatchNormCalibration(train_split.images[sample], recipe.train.batch_size, batches, model=model))
    if phase.unfreeze_every:
        chosen.append(GradualUnfreezing(phase.unfreeze_every, recipe.train.unit, phase.unfreeze_start, model=model))
    if recipe.train.intent_check:
        chosen.append(IntentCheck(model))
    chosen.append(health)
    if recipe.train.early_stopping:
        stop = recipe.train.early_stopping
        # The callback counts validations.
        chosen.append(EarlyStopping(monitor="val_auc", mode="max", patience=math.ceil(stop.patience / validate_every),
                                    min_delta=stop.min_delta))
    return chosen
