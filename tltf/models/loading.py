"""Loading a run's saved model."""

from __future__ import annotations

from pathlib import Path

from tltf.errors import TltfError


def load_run_model(run_dir):
    """`keras.models.load_model(RUN_DIR/model.keras)` with tltf's layers registered."""
    import keras

    import tltf.layers  # noqa: F401  (registers tltf's serializable classes)
    import tltf.train.schedules  # noqa: F401

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise TltfError(f"{path}: no model in this run directory (did the run finish?)")
    return keras.models.load_model(path)
