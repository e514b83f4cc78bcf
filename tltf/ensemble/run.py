"""`tltf ensemble`: finished runs in, one ordinary run directory out (model.keras averaging the members)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Optional

from tltf.errors import TltfError
from tltf.log import logger

WEIGHTINGS = ("equal", "val")
# Keys members may differ in and still be scored on the same validation and test images.
_FREE_DATA_KEYS = ("image_size", "train_fraction", "train_per_class")


def make_ensemble(run_dirs, run_dir=None, weighting: str = "equal", name: Optional[str] = None,
                  runs_root: str = "runs"):
    """Averages finished runs' models into one run directory, evaluated like any run.

    Example:
        result = make_ensemble(["runs/a", "runs/b", "runs/c"], "runs/ensemble-abc", weighting="val")
        print(result.metrics["test"]["auc"], result.metrics["ensemble"]["members"])

    Args:
        run_dirs: finished run directories trained on the same data (their image sizes, backbones and training
            fractions may differ).
        run_dir: where to write (new or empty); default `runs/<name>-<UTC time>`.
        weighting: `equal`, or `val`: the weights with the least validation log-loss (validation only).
        name: the ensemble's recipe name; default the first member's with `-ensemble`.
        runs_root: parent folder of the default run directory.

    Returns:
        a `tltf.run.FitResult` (history and plan empty: nothing trains).

    Raises:
        TltfError: fewer than two members, a member that is not a finished run, members of different data or
            classes, or validation images some member trained on.
    """
    from tltf.export.exporter import RunArtifacts
    from tltf.run import FitResult, finish_run
    from tltf.run_dir import new_run_dir, staged_run_dir

    started = time.monotonic()
    if weighting not in WEIGHTINGS:
        raise TltfError(f"--weights {weighting}: expected one of {', '.join(WEIGHTINGS)}")
    paths = [Path(d) for d in run_dirs]
    if len(paths) < 2:
        raise TltfError("tltf ensemble: give at least two run directories")
    members = [RunArtifacts.read(path) for path in paths]
    recipe = _ensemble_recipe(paths, members, name)
    splits = _shared_splits(paths, members, recipe)
    final_dir = new_run_dir(recipe.name, run_dir, runs_root)
    models, member_scores = _member_models(paths, recipe.data.image_size, splits, recipe.train.batch_size)
    weights = _weights(weighting, splits.val.labels, member_scores)
    with staged_run_dir(final_dir) as work_dir:
        (work_dir / "recipe.yaml").write_text(recipe.to_yaml())
        metrics = _evaluate(work_dir, recipe, models, weights, splits, paths, member_scores, weighting)
        finish_run(work_dir, started)
    logger.info(f"ensemble written to {final_dir}")
    return FitResult(final_dir, metrics, {}, [])


def _ensemble_recipe(paths, members, name):
    """The first member's recipe, renamed, at the largest member size: what evaluate, export and predict read."""
    from tltf.run_dir import first_difference

    first = members[0]
    for path, member in zip(paths[1:], members[1:]):
        if member.class_names != first.class_names:
            raise TltfError(f"{path}: classes {member.class_names} differ from {paths[0]}'s {first.class_names}; "
                            "an ensemble's members classify the same classes")
        difference = first_difference(_comparable_data(first.recipe), _comparable_data(member.recipe), "data.")
        if difference is not None:
            key, old, new = difference
            raise TltfError(f"{path}: {key} is {new!r} where {paths[0]} has {old!r}; an ensemble's members must "
                            "be scored on the same validation and test images")
    size = max(member.recipe.data.image_size for member in members)
    data = first.recipe.data.model_copy(update={"image_size": size})
    return first.recipe.model_copy(update={"name": name or f"{first.recipe.name}-ensemble", "data": data})


def _comparable_data(recipe) -> dict:
    data = recipe.data.model_dump(mode="json")
    return {key: value for key, value in data.items() if key not in _FREE_DATA_KEYS}


def _shared_splits(paths, members, recipe):
    """The splits every member is scored on; refused when a carved validation split differs between members."""
    from tltf.data.sources import load_splits

    splits = load_splits(recipe.data, seed=recipe.train.seed)
    seeds = {member.recipe.train.seed for member in members}
    if splits.val_was_carved and len(seeds) > 1:
        raise TltfError(f"{paths[0]}: the members carved their validation split from train with different "
                        f"train.seed ({', '.join(map(str, sorted(seeds)))}), so each one's validation images "
                        "trained another; use data with its own val split, or members with the same train.seed")
    return splits


def _member_models(paths, image_size: int, splits, batch_size: int):
    """Each member's model (loaded, renamed) and its validation scores at the ensemble's input size."""
    from tltf.ensemble.model import ensemble_model
    from tltf.evaluate.evaluator import predict_probabilities
    from tltf.run_dir import load_run_model

    models = [load_run_model(path) for path in paths]
    scores = []
    for model in models:
        alone = ensemble_model([model], image_size, name="member")  # the member behind the ensemble's resize
        scores.append(predict_probabilities(alone, splits.val.images, batch_size))
    return models, scores


def _weights(weighting: str, val_labels, member_scores) -> list[float]:
    from tltf.ensemble.weights import fit_member_weights

    if weighting == "equal":
        return [1.0 / len(member_scores)] * len(member_scores)
    return [float(w) for w in fit_member_weights(val_labels, member_scores)]


def _evaluate(work_dir: Path, recipe, models, weights, splits, paths, member_scores, weighting) -> dict:
    """model.keras, then the ordinary evaluation files, with the members and their weights in metrics.json."""
    from tltf.ensemble.model import ensemble_model
    from tltf.ensemble.weights import log_loss
    from tltf.evaluate.evaluator import evaluate_splits, write_evaluation
    from tltf.evaluate.metrics import evaluate_predictions
    from tltf.train.trainer import TrainingOutcome

    # A Keras model name is a TensorFlow scope name: letters, digits, _ and . only.
    model = ensemble_model(models, recipe.data.image_size, weights, name=re.sub(r"[^A-Za-z0-9_.]", "_", recipe.name))
    model.save(work_dir / "model.keras")
    logger.info(f"evaluating the ensemble of {len(models)} runs")
    evaluation = evaluate_splits(model, splits, recipe.evaluate.bootstrap, recipe.train.seed, recipe.train.batch_size)
    rows = []
    for path, weight, scores in zip(paths, weights, member_scores):
        val = evaluate_predictions(splits.val.labels, scores, splits.class_names, None, 0, recipe.train.seed)
        rows.append({"run": str(path), "weight": round(weight, 6), "val_auc": val["auc"],
                     "val_log_loss": log_loss(splits.val.labels, scores)})
    evaluation.metrics["ensemble"] = {"weighting": weighting, "members": rows,
                                      "val_log_loss": log_loss(*evaluation.per_split["val"])}
    summary = [f"- an ensemble of {len(models)} runs, probabilities averaged with {weighting} weights "
               f"(`tltf ensemble`); nothing trained"]
    summary += [f"- member `{row['run']}`: weight {row['weight']:.3f}, val AUC {row['val_auc']:.4f}" for row in rows]
    write_evaluation(work_dir, evaluation, TrainingOutcome({}, [], None), recipe.name, summary, [])  # no training
    (work_dir / "ensemble.json").write_text(json.dumps(evaluation.metrics["ensemble"], indent=2) + "\n")
    return evaluation.metrics

