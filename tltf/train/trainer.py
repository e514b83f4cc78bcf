"""The trainer: executes a `TrainingPlan` with one ordinary `model.fit` per phase, resumably.

It knows no recipe, no evaluation and no run directory layout beyond the
folder it is given for checkpoints, logs and its resume state. What differs
between strategies and adaptation methods is in the plan: which model each
phase fits, on which datasets, with which callbacks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from tltf.log import logger
from tltf.models.anatomy import backbone_of
from tltf.train import resume
from tltf.train.collaborators import StatefulCallback
from tltf.train.optimizers import inner_optimizer
from tltf.train.phases import validated_epochs

# Seconds: how far model.keras in an interrupted run may lag behind the best epoch so far.
BEST_MODEL_SAVE_INTERVAL = 60.0


@dataclasses.dataclass
class TrainingOutcome:
    """What a trained plan leaves besides the model.

    Args:
        history: per-epoch metrics of every phase, merged.
        phase_starts: `(phase name, first epoch)` for each phase.
        best_epoch: the 1-based epoch whose weights the model now has (None if no epoch improved).
        chosen_by: the log entry that chose it: the plan's `monitor`, or its `monitor_fallback` when no
            epoch was eligible.
        epochs_run: epochs trained, over all phases.
        epochs_planned: the plan's epochs (more than `epochs_run` when a phase stopped early).
    """

    history: dict
    phase_starts: list
    best_epoch: Optional[int]
    chosen_by: Optional[str] = None
    epochs_run: int = 0
    epochs_planned: int = 0


class Trainer:
    """Runs a plan's phases in order on its model and its one optimizer.

    After every epoch the whole training state is saved in the checkpoint
    folder (`tltf.train.resume`); `run` on a folder that holds one continues
    from the last epoch saved, so a killed run loses at most one epoch.

    Example:
        outcome = Trainer(verbose=0).run(plan, Path("run"))
        plan.model.predict(images)   # the best epoch's weights, compiled with the optimizer that trained it

    Args:
        verbose: Keras `fit` verbosity.
        callbacks: extra Keras callbacks, passed to every phase's `fit`.
    """

    def __init__(self, verbose: int = 2, callbacks=()):
        self.verbose = verbose
        self.callbacks = list(callbacks)

    def run(self, plan, checkpoint_dir: Path, deliver: bool = True) -> Optional[TrainingOutcome]:
        """Fits every phase not yet done; leaves the best epoch's model (with its optimizer state) in
        `checkpoint_dir/model.keras`. With `deliver=False` it stops after the last phase, its last epoch's
        weights in the model (where a following phase would start), and returns None."""
        from tltf.train.callbacks import BestModelCheckpoint

        checkpoint_dir = Path(checkpoint_dir)
        # The resume state holds the best weights every epoch; model.keras need not be rewritten as often.
        best = BestModelCheckpoint(checkpoint_dir / "model.keras", plan.model, monitor=plan.monitor,
                                   mode=plan.monitor_mode, min_seconds_between_saves=BEST_MODEL_SAVE_INTERVAL,
                                   eligible=plan.monitor_eligible, fallback_monitor=plan.monitor_fallback)
        progress, epoch_metrics = resume.load_state(checkpoint_dir, plan, best)
        progress = progress or resume.Progress()
        if progress.epoch or progress.phase_index or progress.batch:
            steps = f" and {progress.batch} step{'s' if progress.batch != 1 else ''}" if progress.batch else ""
            logger.info(f"resuming from {checkpoint_dir / resume.STATE_FILE}: {progress.epoch} epochs{steps} done")
        recorder = resume.RunRecorder(checkpoint_dir, plan, progress, best, plan.checkpoint_every)
        shared = [best, *self._logging_callbacks(checkpoint_dir), *self.callbacks]
        while progress.phase_index < len(plan.phases):
            best.write_at_train_end = progress.phase_index < len(plan.phases) - 1  # the last: saved below
            self._run_phase(plan, progress, shared, recorder, epoch_metrics)
            epoch_metrics = []
            progress.phase_index += 1
            resume.save_state(checkpoint_dir, plan, progress, best)
        if not deliver:
            return None
        best.restore_best()
        for finish in plan.finishers:
            finish(plan.model)
        self._compile_deliverable(plan)
        best.save()
        best_epoch = None if best.best_epoch is None else best.best_epoch + 1
        return TrainingOutcome(progress.history, [tuple(start) for start in progress.phase_starts], best_epoch,
                               best.chosen_by, progress.epoch, sum(p.phase.epochs for p in plan.phases))

    def _run_phase(self, plan, progress, shared: list, recorder, epoch_metrics: list) -> None:
        """The phase's `fit`, from its first epoch not yet done (a resumed partial epoch first, on its own)."""
        index = progress.phase_index
        phase_plan = plan.phases[index]
        phase = phase_plan.phase
        if len(progress.phase_starts) == index:
            progress.phase_starts.append((phase.name, progress.epoch))
        first_epoch = progress.phase_starts[index][1]
        epochs = f"{phase.epochs} epoch{'s' if phase.epochs != 1 else ''}"
        logger.info(f"phase {index + 1}/{len(plan.phases)}: {phase.name}, {epochs}, lr {phase.lr:g}, "
                    f"backbone {'trains' if phase.train_backbone else 'frozen'}")
        backbone_of(plan.model).trainable = phase.train_backbone
        inner_optimizer(plan.optimizer).set_lr_multipliers(
            {**(plan.lr_multipliers if phase.layerwise else {}), **plan.method_lr_multipliers,
             **phase_plan.lr_multipliers})
        target = phase_plan.fit_target
        target.compile(plan.optimizer, jit_compile=plan.jit_compile)
        train_ds, val_ds = target.datasets()
        resume.replay_shuffles(train_ds, progress.epoch - first_epoch, plan)
        # The phase's own callbacks first: some add entries to the epoch logs that the checkpoint chooses by.
        callbacks = [*phase_plan.callbacks, *shared]
        end = first_epoch + phase.epochs
        validated = validated_epochs(first_epoch, end, plan.validate_every)
        validation = dict(validation_data=val_ds, validation_freq=validated)
        stopped = False
        if progress.batch:
            # The rest of the epoch the run was stopped in, its metrics as they were, its batches skipped.
            target.model.fit(train_ds.skip(progress.batch), **validation, initial_epoch=progress.epoch,
                             epochs=progress.epoch + 1, verbose=self.verbose, shuffle=False,
                             callbacks=[*callbacks, resume.RestoreMetrics(epoch_metrics), recorder])
            stopped = target.model.stop_training
            for callback in phase_plan.callbacks:
                if isinstance(callback, StatefulCallback):
                    callback.set_state(callback.get_state())  # carry the trackers over into the next fit
        # A run killed after its last epoch's save, with patience spent, must not start another epoch on resume.
        stopped = stopped or any(getattr(callback, "done", False) for callback in phase_plan.callbacks)
        if progress.epoch < end and not stopped:
            target.model.fit(train_ds, **validation, initial_epoch=progress.epoch, epochs=end,
                             callbacks=[*callbacks, recorder], verbose=self.verbose, shuffle=False)
        if int(plan.optimizer.iterations.numpy()) < phase_plan.end_step:
            # Stopped early: start the next phase on its own schedule.
            plan.optimizer.iterations.assign(phase_plan.end_step)

    @staticmethod
    def _logging_callbacks(checkpoint_dir: Path) -> list:
        import keras

        return [keras.callbacks.TensorBoard(str(checkpoint_dir / "logs"), write_graph=False)]

    @staticmethod
    def _compile_deliverable(plan) -> None:
        """The full model, trainable as its optimizer was built and compiled with it, so its state reloads."""
        backbone_of(plan.model).trainable = any(p.phase.train_backbone for p in plan.phases)
        optimizer = plan.optimizer if plan.retained_optimizer is None else plan.retained_optimizer(plan.optimizer)
        plan.model.compile(optimizer=optimizer, loss=plan.task.loss(), metrics=plan.task.metrics())
