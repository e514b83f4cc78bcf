"""find_learning_rate(recipe): the learning-rate finder on one phase of a recipe, with no side effects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tltf.errors import RecipeError
from tltf.log import logger
from tltf.train import learning_rate_rules

RESULT_KEYS = ("suggested_lr", "rule", "rule_description", "suggestions", "lrs", "losses")


def find_learning_rate(recipe, phase: Optional[str] = None, steps: int = 100, min_lr: float = 1e-7,
                       max_lr: float = 1.0, rule: str = learning_rate_rules.AUTO) -> dict:
    """Sweeps the learning rate of one phase of `recipe` (`tltf.callbacks.LearningRateFinder`) and returns
    `{"suggested_lr", "rule", "rule_description", "suggestions", "lrs", "losses", "phase"}`.

    The phases before it are trained first, as in `tltf fit`; then the phase trains exactly what it would (its
    model, datasets, frozen parts and per-unit multipliers), with a fresh optimizer of the recipe's kind whose
    base rate the sweep sets; the suggestion is for that phase's base rate (`train.lr`, or `train.head_warmup.lr`
    for a warm-up). Nothing is written.

    Args:
        recipe: a validated recipe.
        phase: the phase's name (default: the last phase, the one that fine-tunes).
        steps: at most this many optimizer steps.
        min_lr: the first rate of the sweep.
        max_lr: the last.
        rule: how the suggestion is read off the curve (`tltf.train.learning_rate_rules`); `auto`: the rule for
            how the phase starts (`learning_rate_rules.for_phase`).
    """
    from tltf.assemble import assemble_training, check_weights, model_from_recipe
    from tltf.data.sources import load_splits
    from tltf.models.anatomy import backbone_of
    from tltf.task import Task
    from tltf.train.callbacks import LearningRateFinder
    from tltf.train.distribution import dtype_policy, make_strategy, wrap_for_precision
    from tltf.train.optimizers import build_optimizer

    check_weights(recipe)
    splits = load_splits(recipe.data, seed=recipe.train.seed)
    strategy = make_strategy(recipe.train.distribution)
    with dtype_policy(recipe.train.precision), strategy.scope():
        model = model_from_recipe(recipe, Task(splits.class_names))
        plan = assemble_training(recipe, model, splits, verbose=0)
        index = _phase_index(plan, phase)
        chosen = plan.phases[index]
        _train_earlier_phases(plan, index)
        backbone_of(model).trainable = chosen.phase.train_backbone
        multipliers = {**(plan.lr_multipliers if chosen.phase.layerwise else {}), **plan.method_lr_multipliers}
        optimizer = wrap_for_precision(build_optimizer(recipe.train.spec(), min_lr, multipliers),
                                       recipe.train.precision)
        target = chosen.fit_target
        target.compile(optimizer, jit_compile=plan.jit_compile, steps_per_execution=1)  # a rate per step
        train_ds, _ = target.datasets()
        rule = learning_rate_rules.for_phase(index > 0) if rule == learning_rate_rules.AUTO else rule
        finder = LearningRateFinder(min_lr, max_lr, steps, rule=rule)
        logger.info(f"sweeping the learning rate of phase {chosen.phase.name} from {min_lr:g} to {max_lr:g} "
                    f"over at most {steps} steps")
        target.model.fit(train_ds.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[finder], verbose=0,
                         shuffle=False)
    return {**finder.result(), "phase": chosen.phase.name}


def _phase_index(plan, phase: Optional[str]) -> int:
    """The index of the phase named `phase` (None: the last); one line naming the phases when there is none."""
    names = [p.phase.name for p in plan.phases]
    if phase is not None and phase not in names:
        raise RecipeError(f"--phase {phase}: this recipe's phases are {', '.join(names)}")
    return names.index(phase) if phase is not None else len(names) - 1


def _train_earlier_phases(plan, index: int) -> None:
    """The phases before the swept one, trained as `tltf fit` trains them (into a folder that is then deleted):
    a fine-tuning phase's sweep starts from the warmed-up head it starts from in a run, not from a random one,
    whose own learning would dominate the curve."""
    import dataclasses
    import tempfile

    from tltf.train.trainer import Trainer

    if index == 0:
        return
    earlier = plan.phases[:index]
    logger.info(f"training {', '.join(p.phase.name for p in earlier)} first, as tltf fit does, so the sweep starts "
                f"where {plan.phases[index].phase.name} starts")
    with tempfile.TemporaryDirectory(prefix="tltf-lr-find-") as folder:
        Trainer(verbose=0).run(dataclasses.replace(plan, phases=earlier, finishers=()), Path(folder), deliver=False)


def write_learning_rate_finder(result: dict, out: Path) -> tuple[Path, Path]:
    """`OUT/lr_find.json` and `OUT/lr_find.png`, and nothing else."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / "lr_find.json", out / "lr_find.png"
    json_path.write_text(json.dumps({key: result[key] for key in RESULT_KEYS}, indent=1) + "\n")
    plot_learning_rate_finder(png_path, result)
    return json_path, png_path


def plot_learning_rate_finder(path, result: dict) -> None:
    """lr_find.png: the smoothed loss against the rate (log x), the suggestion and the other rules' rates marked."""
    from tltf.evaluate.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result["lrs"], result["losses"], color="black")
    for (name, rate), style in zip(result["suggestions"].items(), (":", "-.", (0, (5, 2)), (0, (1, 3)))):
        if rate and name != result["rule"]:
            ax.axvline(rate, color="tab:blue", linestyle=style, label=f"{name} {rate:.2g} (another rule)")
    if result["suggested_lr"]:
        ax.axvline(result["suggested_lr"], color="tab:red", linewidth=2,
                   label=f"suggested ({result['rule']}) {result['suggested_lr']:.2g}")
    ax.legend(fontsize=8)
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss",
           title=f"learning-rate finder: {result['rule']}, {result['rule_description']}")
    ax.title.set_fontsize(8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
