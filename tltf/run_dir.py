"""Run directories: named, never overwritten, never half-written.

A run is built in `<run dir>.partial/` and renamed into place only when it
has finished. A user error (exit 2) removes the partial folder; a crash,
Ctrl-C or kill keeps it, so nothing already trained is lost, and says where
it is. Running the same recipe into the same folder continues it
(`run_dir_for`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
from pathlib import Path

from tltf.errors import RecipeError, TltfError
from tltf.log import logger

PARTIAL_SUFFIX = ".partial"


def new_run_dir(name: str, run_dir=None, root: str = "runs") -> Path:
    """The folder a new run will land in: `--run-dir`, or `runs/<name>-<UTC timestamp>`."""
    if run_dir is not None:
        path = Path(run_dir).expanduser()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise TltfError(f"{path}: --run-dir already exists and is not empty; choose a new folder or remove it")
    else:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = Path(root) / f"{name}-{stamp}"
        suffix = 1
        while path.exists() or _partial(path).exists():
            suffix += 1
            path = Path(root) / f"{name}-{stamp}-{suffix}"
    if _partial(path).exists():
        raise TltfError(
            f"{_partial(path)}: an interrupted run is in the way; continue it with the same recipe, or pass "
            "--restart to discard it"
        )
    return path


def run_dir_for(recipe, run_dir=None, root: str = "runs", resume: bool = False, restart: bool = False) -> Path:
    """Where a run goes: an interrupted run to continue (`DIR.partial` of `--run-dir`, or with `resume` the
    newest `runs/<name>-*.partial`), or a new folder. `restart` discards an interrupted run first.

    Raises:
        TltfError: the interrupted run was trained with a different recipe (naming the first differing key),
            `resume` without any interrupted run, or a `--run-dir` that is taken.
    """
    if run_dir is None and resume:
        # Only this recipe's own runs: `pneumonia-<time>`, not another recipe's `pneumonia-mobilenet-<time>`.
        own = re.compile(re.escape(recipe.name) + r"-\d{8}T\d{6}Z(-\d+)?" + re.escape(PARTIAL_SUFFIX))
        candidates = sorted((p for p in Path(root).glob(f"{recipe.name}-*{PARTIAL_SUFFIX}") if own.fullmatch(p.name)),
                            key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise TltfError(f"{root}: no interrupted run of {recipe.name!r} to resume (no {recipe.name}-*.partial)")
        run_dir = candidates[-1].with_name(candidates[-1].name[: -len(PARTIAL_SUFFIX)])
    if run_dir is not None and _partial(Path(run_dir).expanduser()).exists():
        partial = _partial(Path(run_dir).expanduser())
        if restart:
            shutil.rmtree(partial)
        else:
            _check_same_recipe(partial, recipe)
            logger.info(f"continuing the interrupted run in {partial}")
            return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])
    return new_run_dir(recipe.name, run_dir, root)


def _check_same_recipe(partial: Path, recipe) -> None:
    if not (partial / "recipe.yaml").is_file():
        return  # killed before it wrote anything worth keeping
    difference = recipe_difference(partial, recipe)
    if difference is not None:
        key, old, new = difference
        raise TltfError(f"{partial}: the recipe differs from the interrupted run's at {key} ({old!r} there, "
                        f"{new!r} now); rerun with the same recipe, or pass --restart to discard the run")


def recipe_difference(run_dir: Path, recipe):
    """`(dotted key, the run's value, the recipe's value)` of the first difference between `RUN_DIR/recipe.yaml`
    and `recipe`, or None. A recipe's `precision: auto` matches the precision the run's recipe.yaml says auto
    chose; a key the run's recipe.yaml lacks (added to tltf after the run) counts as its default."""
    import yaml

    try:  # validating fills in the keys added since, at their defaults
        saved = yaml.safe_load(load_run_recipe(run_dir).to_yaml())
    except RecipeError:  # a key since removed or renamed: the file as it is, so the difference names it
        saved = yaml.safe_load((Path(run_dir) / "recipe.yaml").read_text())
    now = yaml.safe_load(recipe.to_yaml())
    if now["train"]["precision"] == "auto":
        now["train"]["precision"] = saved["train"]["precision"]
    return first_difference(saved, now)


def first_difference(old, new, prefix: str = ""):
    """`(dotted key, old value, new value)` of the first difference between two nested dicts, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            found = first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if old == new else (prefix.rstrip("."), old, new)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def staged_run_dir(final: Path):
    """Yields `final.partial/` to write into; renames it to `final` on success.

    An interrupted run's folder is continued, and never removed by a user error.
    """
    partial = _partial(final)
    continuing = partial.exists()
    partial.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
    except TltfError:
        if not continuing:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    except BaseException:
        logger.error(f"run stopped; what it had written is kept in {partial}; rerun the same command to continue it")
        raise
    if final.exists():
        final.rmdir()  # new_run_dir allowed only an empty folder here
    os.replace(partial, final)


def load_run_recipe(run_dir):
    """The resolved recipe a run was trained with (`RUN_DIR/recipe.yaml`), validated."""
    import yaml

    from tltf.recipe import validate_recipe

    path = Path(run_dir) / "recipe.yaml"
    if not path.is_file():
        raise TltfError(f"{run_dir}: not a tltf run directory (no recipe.yaml)")
    return validate_recipe(yaml.safe_load(path.read_text()), source=str(path))


def _mentions_keras_hub(path: Path) -> bool:
    """Whether a `.keras` file's config names a KerasHub class (a run with `backbone: hub`)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return b'"keras_hub' in archive.read("config.json")


def load_run_model(run_dir):
    """`keras.models.load_model(RUN_DIR/model.keras)` with tltf's serializable classes registered (and, for a LoRA
    model or an ensemble's LoRA member, everything but the adapters, the head and BatchNorm frozen again, as it
    trained)."""
    import keras

    import tltf.layers  # noqa: F401  (registers tltf's serializable classes)
    import tltf.train.optimizers  # noqa: F401
    import tltf.train.schedules  # noqa: F401

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise TltfError(f"{path}: no model in this run directory (did the run finish?)")
    from tltf.models.lora import freeze_outside_adapters

    if _mentions_keras_hub(path):
        from tltf.models.hub import import_keras_hub

        import_keras_hub()  # registers KerasHub's classes, or says what to install
    model = keras.models.load_model(path)
    for classifier in _classifiers(model):  # an ensemble's members (and a member's test-time views) as they trained
        freeze_outside_adapters(classifier)
    return model


def _classifiers(model) -> list:
    """The trained classifiers inside a model that averages others (an ensemble, test-time views), nested or
    not; `[model]` for any other model."""
    from tltf.models.anatomy import members_of

    members = members_of(model)
    return [inner for member in members for inner in _classifiers(member)] if members else [model]
