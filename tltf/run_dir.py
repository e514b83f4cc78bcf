"""Run directories: named, never overwritten, never half-written.

A run is built in `<run dir>.partial/` and renamed into place only when it
has finished. A user error (exit 2) removes the partial folder; a crash or
Ctrl-C keeps it, so nothing already trained is lost, and says where it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from pathlib import Path

from tltf.errors import TltfError
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
            f"{_partial(path)}: an interrupted run is in the way; remove it or choose another --run-dir"
        )
    return path


def _partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def staged_run_dir(final: Path):
    """Yields `final.partial/` to write into; renames it to `final` on success."""
    partial = _partial(final)
    partial.mkdir(parents=True)
    try:
        yield partial
    except TltfError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except BaseException:
        logger.error(f"run stopped; what it had written is kept in {partial}")
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


def load_run_model(run_dir):
    """`keras.models.load_model(RUN_DIR/model.keras)` with tltf's serializable classes registered."""
    import keras

    import tltf.layers  # noqa: F401  (registers tltf's serializable classes)
    import tltf.train.optimizers  # noqa: F401
    import tltf.train.schedules  # noqa: F401

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise TltfError(f"{path}: no model in this run directory (did the run finish?)")
    return keras.models.load_model(path)
