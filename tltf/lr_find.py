"""find_learning_rate(recipe): the learning-rate finder on one phase of a recipe, with no side effects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tltf.errors import RecipeError
from tltf.log import logger


def find_learning_rate(recipe, phase: Optional[str] = None, steps: int = 100, min_lr: float = 1e-7,
                       max_lr: float = 1.0) -> dict:
    """Sweeps the learning rate of one phase of `recipe` (`tltf.callbacks.LearningRateFinder`) and returns
    `{"suggested_lr", "rule", "lrs", "losses", "phase"}`.

    The phase trains exactly what it would in `tltf fit` (its model, datasets, frozen parts and per-unit
    multipliers), with a fresh optimizer of the recipe's kind whose base rate the sweep sets; the suggestion is
    for that phase's base rate (`train.lr`, or `train.head_warmup.lr` for a warm-up). Nothing is written.

    Args:
        recipe: a validated recipe.
        phase: the phase's name (default: the last phase, the one that fine-tunes).
        steps: at most this many optimizer steps.
        min_lr: the first rate of the sweep.
        max_lr: the last.
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
        names = [p.phase.name for p in plan.phases]
        if phase is not None and phase not in names:
            raise RecipeError(f"--phase {phase}: this recipe's phases are {', '.join(names)}")
        chosen = plan.phases[names.index(phase) if phase is not None else -1]
        backbone_of(model).trainable = chosen.phase.train_backbone
        multipliers = {**(plan.lr_multipliers if chosen.phase.layerwise else {}), **plan.method_lr_multipliers}
        optimizer = wrap_for_precision(build_optimizer(recipe.train.spec(), min_lr, multipliers),
                                       recipe.train.precision)
        target = chosen.fit_target
        target.compile(optimizer, jit_compile=plan.jit_compile)
        train_ds, _ = target.datasets()
        finder = LearningRateFinder(min_lr, max_lr, steps)
        logger.info(f"sweeping the learning rate of phase {chosen.phase.name} from {min_lr:g} to {max_lr:g} "
                    f"over at most {steps} steps")
        target.model.fit(train_ds.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[finder], verbose=0,
                         shuffle=False)
    return {**finder.result(), "phase": chosen.phase.name}


def write_learning_rate_finder(result: dict, out: Path) -> tuple[Path, Path]:
    """`OUT/lr_find.json` and `OUT/lr_find.png`, and nothing else."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / "lr_find.json", out / "lr_find.png"
    json_path.write_text(json.dumps({key: result[key] for key in ("suggested_lr", "rule", "lrs", "losses")},
                                    indent=1) + "\n")
    plot_learning_rate_finder(png_path, result)
    return json_path, png_path


def plot_learning_rate_finder(path, result: dict) -> None:
    """lr_find.png: the smoothed loss against the rate (log x), the suggestion marked."""
    from tltf.evaluate.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["lrs"], result["losses"])
    if result["suggested_lr"]:
        ax.axvline(result["suggested_lr"], color="tab:red", linestyle="--",
                   label=f"suggested {result['suggested_lr']:.2e}")
        ax.legend()
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss", title="learning-rate finder")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
