"""fit(recipe): data → model → phases → model.fit per phase → evaluation → run dir.

Nothing here replaces `model.fit`: each phase is one ordinary `fit` call on
a compiled Keras model, with standard callbacks. What tltf adds is the
bookkeeping between phases: the trainable flags, the recompile Keras needs
after they change, one optimizer whose slots carry over, and the feature
cache when the backbone is frozen and the images are not augmented.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tltf.data.pipeline import build_augmenter, make_dataset
from tltf.data.sources import ImageSplits, class_weights, load_splits
from tltf.models.blocks import BlockMap
from tltf.models.build import backbone_of, build_model_from_recipe, head_of
from tltf.run_dir import new_run_dir, staged_run_dir
from tltf.train.distribution import dtype_policy, make_strategy, wrap_for_precision
from tltf.train.features import extract_features
from tltf.train.layerwise import recipe_unit_multipliers_checked, variable_multipliers
from tltf.train.optimizers import build_optimizer, inner_optimizer
from tltf.train.phases import Phase, phase_schedule, plan_phases


@dataclasses.dataclass
class FitResult:
    run_dir: Path
    metrics: dict
    history: dict
    plan: list


def fit(recipe, run_dir=None, *, runs_root: str = "runs", log: Callable[[str], None] = print,
        verbose: Optional[int] = None, callbacks=()) -> FitResult:
    """Trains and evaluates a recipe, writing a complete run directory.

    Example:
        result = tltf.fit(tltf.load_recipe("recipes/pneumonia-mobilenet.yaml"))
        print(result.metrics["test"]["auc"])

    Args:
        recipe: a validated `tltf.recipe.Recipe`.
        run_dir: where to write; default `runs/<name>-<UTC timestamp>`.
        runs_root: parent folder of default run directories.
        log: receives progress lines.
        verbose: Keras verbosity; default a progress bar on a terminal,
            one line per epoch otherwise.
        callbacks: extra Keras callbacks, passed to every phase's `fit`.

    Raises:
        TltfError: bad data, weights or run dir, before anything is written.
    """
    import keras

    from tltf.evaluate.evaluator import evaluate_splits, write_evaluation

    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    strategy = make_strategy(recipe.train.distribution)
    keras.utils.set_random_seed(recipe.train.seed)
    final_dir = new_run_dir(recipe.name, run_dir, runs_root)
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    log(f"data: {splits.summary()}")
    target = None
    if recipe.adaptation is not None:
        from tltf.adapt.target import load_target

        target = load_target(recipe.adaptation.target, recipe.data.image_size, splits.class_names)
        log(target.summary())
    with dtype_policy(recipe.train.precision), strategy.scope():
        model = build_model_from_recipe(recipe, splits.num_classes)
        phases = plan_phases(recipe.train)
        trainer = PhaseTrainer(model, splits, recipe, verbose=verbose, target=target)
        plan = trainer.plan_rows(phases)
        log(_plan_text(recipe, plan, strategy.num_replicas_in_sync))

        with staged_run_dir(final_dir) as work_dir:
            (work_dir / "recipe.yaml").write_text(recipe.to_yaml())
            before = _domain_features(model, splits, target, recipe) if target is not None else None
            history = trainer.run(phases, work_dir, log=log, callbacks=callbacks)
            log("evaluating the best checkpoint")
            metrics = evaluate_splits(model, splits, recipe.evaluate.bootstrap, recipe.train.seed,
                                      recipe.train.batch_size)
            metrics["best_epoch"] = trainer.best_epoch
            if target is not None:
                metrics.update(_adaptation_metrics(model, splits, target, recipe, before, work_dir, log, verbose))
            write_evaluation(work_dir, metrics, history, trainer.phase_starts, recipe, plan)
    log(f"run written to {final_dir}")
    return FitResult(final_dir, {k: v for k, v in metrics.items() if not k.startswith("_")}, history, plan)


def _domain_features(model, splits, target, recipe, limit: int = 1000):
    """Pooled backbone features of up to `limit` source-train and target images."""
    bs = recipe.train.batch_size
    return (extract_features(model, splits.train.images[:limit], bs, verbose=0),
            extract_features(model, target.images[:limit], bs, verbose=0))


def _adaptation_metrics(model, splits, target, recipe, before, work_dir, log, verbose) -> dict:
    """Target metrics, the source-only baseline, the proxy A-distance and the embedding plot."""
    from tltf.adapt.evaluation import plot_embedding, proxy_a_distance

    after = _domain_features(model, splits, target, recipe)
    result = {"a_distance": {"before": proxy_a_distance(*before, seed=recipe.train.seed),
                             "after": proxy_a_distance(*after, seed=recipe.train.seed)}}
    # The plotted target images are labelled only when they are the evaluation images (transductive targets).
    transductive = target.evaluation is not None and target.evaluation.images is target.images
    target_labels = target.evaluation.labels[: len(after[1])] if transductive else None
    if target.evaluation is not None:
        result["target"] = _target_metrics(model, target, splits.class_names, recipe)
        if recipe.adaptation.compare_source_only:
            import keras

            log("training the source-only baseline at the same budget")
            keras.utils.set_random_seed(recipe.train.seed)
            baseline = build_model_from_recipe(recipe, splits.num_classes)
            trainer = PhaseTrainer(baseline, splits, recipe, verbose=verbose)
            (work_dir / "source_only").mkdir()
            trainer.run(plan_phases(recipe.train), work_dir / "source_only", log=log)
            result["target_source_only"] = _target_metrics(baseline, target, splits.class_names, recipe)
    plot_embedding(work_dir / "embedding.png", after[0], after[1], splits.train.labels[: len(after[0])],
                   target_labels, splits.class_names, title="(after adaptation)")
    log(f"proxy A-distance source↔target: {result['a_distance']['before']:.3f} before, "
        f"{result['a_distance']['after']:.3f} after")
    return result


def _target_metrics(model, target, class_names, recipe) -> dict:
    from tltf.evaluate.evaluator import predict_probabilities
    from tltf.evaluate.metrics import evaluate_predictions

    probabilities = predict_probabilities(model, target.evaluation.images, recipe.train.batch_size)
    metrics = evaluate_predictions(target.evaluation.labels, probabilities, class_names, threshold=0.5, bootstrap=0)
    return {"auc": metrics["auc"], "accuracy": metrics["accuracy"]}


class PhaseTrainer:
    """Runs a list of `Phase`s on one model with one optimizer.

    Example:
        trainer = PhaseTrainer(model, splits, recipe)
        history = trainer.run(plan_phases(recipe.train), Path("run"))

    Args:
        model: from `tltf.build_model`.
        splits: the loaded `ImageSplits`.
        recipe: the validated recipe (augment, train, data, adaptation sections).
        verbose: Keras `fit` verbosity.
        target: a `tltf.adapt.target.TargetData` to adapt to with DANN
            (`recipe.adaptation`), or None.
    """

    def __init__(self, model, splits: ImageSplits, recipe, verbose: int = 2, target=None):
        self.model = model
        self.target = target  # TargetData: train domain-adversarially toward it
        self.dann = None
        self.splits = splits
        self.recipe = recipe
        self.verbose = verbose
        self.steps_per_epoch = math.ceil(len(splits.train) / recipe.train.batch_size)
        self.phase_starts: list[tuple[str, int]] = []
        self.best_epoch: Optional[int] = None
        self.compiled: list[tuple[str, str]] = []  # (phase, model name) per compile, for tests and logs
        self._features: Optional[dict] = None
        self._head_trainer = None
        self._block_map = None
        self.log: Callable[[str], None] = print
        self._augmenter = build_augmenter(recipe.augment, recipe.train.seed)

    # ------------------------------------------------------------- planning

    def uses_feature_cache(self, phase: Phase) -> bool:
        """A frozen backbone on unaugmented images gives the same features every epoch."""
        return (not phase.train_backbone and not self.recipe.augment.enabled and self.recipe.train.feature_cache
                and self.target is None)

    def plan_rows(self, phases: list[Phase]) -> list[tuple]:
        backbone = backbone_of(self.model)
        rows = []
        for phase in phases:
            backbone.trainable = phase.train_backbone
            trainable = _count(self.model.trainable_weights)
            frozen = _count(self.model.non_trainable_weights)
            rows.append((phase.name, phase.epochs, f"{phase.lr:g}", "trains" if phase.train_backbone else "frozen",
                         f"{trainable:,}", f"{frozen:,}", "yes" if self.uses_feature_cache(phase) else "no"))
        return rows

    # -------------------------------------------------------------- running

    def run(self, phases: list[Phase], work_dir: Path, log: Callable[[str], None] = print, callbacks=()) -> dict:
        """Fits every phase in order; returns the merged per-epoch history.

        `callbacks` are extra Keras callbacks given to every phase's `fit`.
        """
        import keras

        from tltf.train.callbacks import BestModelCheckpoint

        self.log = log
        schedule = phase_schedule(phases, self.steps_per_epoch)
        boundaries = schedule.boundaries()
        multipliers = self.lr_multipliers()
        self.optimizer = wrap_for_precision(build_optimizer(self.recipe.train, schedule, multipliers),
                                            self.recipe.train.precision)
        backbone = backbone_of(self.model)
        # Build the slots for every variable any phase trains, once: the head's
        # moments then carry over when the backbone is unfrozen.
        backbone.trainable = any(p.train_backbone for p in phases)
        if self.target is not None:
            from tltf.adapt import DomainAdversarialModel

            head = self.recipe.adaptation.domain_head
            self.dann = DomainAdversarialModel(self.model, head.hidden, head.dropout,
                                               features=self.recipe.adaptation.features, name="dann")
        self.optimizer.build((self.dann or self.model).trainable_variables)
        best = BestModelCheckpoint(work_dir / "model.keras", self.model, monitor="val_auc", mode="max")
        shared_callbacks = [
            best,
            keras.callbacks.CSVLogger(str(work_dir / "history.csv"), append=True),
            keras.callbacks.TensorBoard(str(work_dir / "logs"), write_graph=False),
        ]
        history: dict[str, list] = {}
        epoch = 0
        for index, phase in enumerate(phases):
            self.phase_starts.append((phase.name, epoch))
            log(f"phase {index + 1}/{len(phases)}: {phase.name}, {phase.epochs} epochs, lr {phase.lr:g}, "
                f"backbone {'trains' if phase.train_backbone else 'frozen'}")
            backbone.trainable = phase.train_backbone
            inner_optimizer(self.optimizer).set_lr_multipliers(multipliers if phase.layerwise else {})
            if self.dann is not None:
                fitted = self.dann
                fitted.compile(optimizer=self.optimizer)
                self.compiled.append((phase.name, fitted.name))
                train_ds, val_ds = self._adaptation_datasets()
            else:
                fitted = self._head_on_features() if self.uses_feature_cache(phase) else self.model
                self._compile(fitted, phase)
                train_ds, val_ds = self._datasets(fitted is not self.model)
            phase_callbacks = [*shared_callbacks, *callbacks, *self._phase_callbacks(phase, boundaries, phases)]
            result = fitted.fit(train_ds, validation_data=val_ds, initial_epoch=epoch, epochs=epoch + phase.epochs,
                                callbacks=phase_callbacks, verbose=self.verbose, shuffle=False)
            for key, values in result.history.items():
                history.setdefault(key, []).extend(float(v) for v in values)
            epoch += len(result.epoch)
            if int(self.optimizer.iterations.numpy()) < boundaries[index + 1]:
                # Stopped early: start the next phase on its own schedule.
                self.optimizer.iterations.assign(boundaries[index + 1])
        best.restore_best()
        self.best_epoch = None if best.best_epoch is None else best.best_epoch + 1
        # The deliverable: the full model at its best epoch, compiled with the optimizer
        # that trained it, and trainable as that optimizer was built, so its state reloads.
        backbone.trainable = any(p.train_backbone for p in phases)
        if self.dann is not None:
            # The classifier ships without the domain head, so its optimizer state must not carry one.
            self.optimizer = _optimizer_for(self.model, self.optimizer, self.recipe.train, schedule, multipliers)
        self._compile(self.model, phases[-1])
        best.save()
        return history

    def _phase_callbacks(self, phase: Phase, boundaries: list[int], phases: list[Phase]) -> list:
        """The callbacks a phase's recipe settings call for (λ schedule, unfreezing, intent check, early stop)."""
        import keras

        from tltf.train.callbacks import GradualUnfreezing, IntentCheck

        chosen = []
        if self.dann is not None:
            from tltf.adapt import GradientReversalSchedule

            strength = self.recipe.adaptation.lambda_
            chosen.append(GradientReversalSchedule(self.dann.reversal, boundaries[-1], strength.schedule,
                                                   strength.gamma, strength.max, self._adaptation_start(boundaries, phases)))
        if phase.unfreeze_every:
            chosen.append(GradualUnfreezing(phase.unfreeze_every, self.recipe.train.unit, phase.unfreeze_start))
        if self.recipe.train.intent_check:
            chosen.append(IntentCheck(self.model))
        if self.recipe.train.early_stopping:
            es = self.recipe.train.early_stopping
            chosen.append(keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=es.patience,
                                                        min_delta=es.min_delta))
        return chosen

    def _adaptation_start(self, boundaries: list[int], phases: list[Phase]) -> int:
        """The first step at which what the reversed gradient reaches can train."""
        if self.recipe.adaptation.features == "head":
            return 0
        return next((boundaries[i] for i, p in enumerate(phases) if p.train_backbone), boundaries[-1])

    def block_map(self) -> BlockMap:
        if self._block_map is None:
            self._block_map = BlockMap.of(self.model, self.recipe.train.unit)
        return self._block_map

    def lr_multipliers(self) -> dict:
        """Variable path → learning-rate multiplier from the recipe's discriminative rates or layer decay."""
        block_map = self.block_map()
        units = recipe_unit_multipliers_checked(self.recipe.train, block_map.names)
        return variable_multipliers(block_map.path_to_unit(), units)

    def _head_on_features(self):
        """The head wrapped in its own model, to fit on cached features.

        A wrapper rather than the head layer itself: a compiled nested layer
        would carry the optimizer into the full model's .keras file twice.
        """
        import keras

        if self._head_trainer is None:
            head = head_of(self.model)
            features = keras.Input(head.input_shape[1:], name="features")
            self._head_trainer = keras.Model(features, head(features), name="head_on_features")
        return self._head_trainer

    def _compile(self, target, phase: Phase) -> None:
        """(Re)compiles `target`: Keras bakes the trainable variables into the train function."""
        import keras

        binary = self.splits.num_classes == 2
        if binary:
            loss = keras.losses.BinaryCrossentropy()
            metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")]
        else:
            loss = keras.losses.CategoricalCrossentropy()
            metrics = [keras.metrics.AUC(name="auc", multi_label=True, num_labels=self.splits.num_classes),
                       keras.metrics.CategoricalAccuracy(name="accuracy")]
        target.compile(optimizer=self.optimizer, loss=loss, metrics=metrics)
        self.compiled.append((phase.name, target.name))

    def _datasets(self, on_features: bool):
        train, val = self.splits.train, self.splits.val
        t = self.recipe.train
        weights = None
        if self.recipe.data.class_weight == "auto":
            # Sample weights, not fit(class_weight=...): Keras ignores the latter with tf.data in some versions.
            weights = class_weights(train.labels, self.splits.num_classes)[train.labels]
        if on_features:
            features = self.cached_features()
            train_x, val_x, augmenter = features["train"], features["val"], None
        else:
            train_x, val_x, augmenter = train.images, val.images, self._augmenter
        n = self.splits.num_classes
        train_ds = make_dataset(train_x, train.labels, n, t.batch_size, training=True, augmenter=augmenter,
                                sample_weights=weights, seed=t.seed)
        val_ds = make_dataset(val_x, val.labels, n, t.batch_size)
        return train_ds, val_ds

    def _adaptation_datasets(self):
        """((source images, labels), target images) batches for DANN; source validation as usual."""
        import tensorflow as tf

        from tltf.data.pipeline import make_unlabelled_dataset

        train_ds, val_ds = self._datasets(False)
        t = self.recipe.train
        target_ds = make_unlabelled_dataset(self.target.images, t.batch_size, augmenter=self._augmenter, seed=t.seed)
        return tf.data.Dataset.zip((train_ds, target_ds)), val_ds

    def cached_features(self) -> dict:
        """Backbone features of train and val, computed on first use and kept."""
        if self._features is None:
            self.log("computing backbone features once (the backbone is frozen and images are not augmented)")
            bs = self.recipe.train.batch_size
            self._features = {
                "train": extract_features(self.model, self.splits.train.images, bs, self.verbose),
                "val": extract_features(self.model, self.splits.val.images, bs, self.verbose),
            }
        return self._features


def _optimizer_for(model, trained, train, schedule, multipliers):
    """A copy of `trained` holding only `model`'s variables: same step count, same slots for those variables."""
    fresh = wrap_for_precision(build_optimizer(train, schedule, multipliers), train.precision)
    fresh.build(model.trainable_variables)
    slots = {v.path.rsplit("/", 1)[-1]: v for v in inner_optimizer(trained).variables}
    for variable in inner_optimizer(fresh).variables:
        source = slots.get(variable.path.rsplit("/", 1)[-1])
        if source is not None and source.shape == variable.shape:
            variable.assign(source)
    return fresh


def _count(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


def _plan_text(recipe, rows, replicas: int = 1) -> str:
    from tltf.evaluate.report import format_table

    header = ("phase", "epochs", "lr", "backbone", "trainable params", "frozen params", "feature cache")
    m = recipe.model
    title = (f"plan: {recipe.train.strategy} on {m.backbone} (weights {m.weights}, BatchNorm {m.bn}), "
             f"{recipe.train.optimizer}, batch {recipe.train.batch_size}, {recipe.train.precision}, "
             f"{recipe.train.distribution} distribution ({replicas} replica{'s' if replicas > 1 else ''})")
    return title + "\n" + format_table(rows, header)
