"""Predicting on image files with a run's model or an exported SavedModel.

Each file gets a row; a file that cannot be decoded gets an error row and
the others go on.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path
from typing import Optional

import numpy as np

from tltf.data.images import CLIENT_SUFFIXES, IMAGE_SUFFIXES
from tltf.errors import TltfError


@dataclasses.dataclass
class Prediction:
    """One file's prediction, or its error.

    Args:
        file: the file as given.
        class_name: the predicted class (binary: at the threshold chosen on val).
        class_id: its id.
        class_probability: the model's probability of the predicted class.
        probabilities: the probability of each class, in class-id order.
        error: why the file could not be predicted (the other fields are None).
    """

    file: str
    class_name: Optional[str] = None
    class_id: Optional[int] = None
    class_probability: Optional[float] = None
    probabilities: Optional[list] = None
    error: Optional[str] = None


def expand_inputs(inputs) -> list[Path]:
    """Files, folders (searched recursively for images) and glob patterns, in order, without repeats."""
    paths: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(str(item), recursive=True)) if glob.has_magic(str(item)) else [str(item)]
        if not matches:
            raise TltfError(f"{item}: no file matches this pattern")
        for match in matches:
            path = Path(match)
            if path.is_dir():
                paths += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            elif path.exists():
                paths.append(path)
            else:
                raise TltfError(f"{path}: no such file or folder")
    return list(dict.fromkeys(paths))


class Predictor:
    """Predicts from a run directory (model.keras) or a SavedModel (a version folder or its parent).

    Example:
        rows = Predictor("exports/pneumonia").predict([Path("xray.png")])

    Args:
        target: a `tltf fit` run directory, a SavedModel folder, or a TF
            Serving model folder whose highest numeric version is used.
        dicom_window: how DICOM files are windowed (`auto`, `none` or `(centre, width)`); default the run's
            `data.dicom.window`, or `auto` for a SavedModel (it cannot know the window it was trained with).
            DICOM and TIFF files are decoded here, on the client, and sent to a SavedModel's float signature
            (TF Serving cannot decode them); JPEG, PNG, BMP and GIF go to its bytes signature.
    """

    def __init__(self, target, dicom_window=None):
        target = Path(target)
        if (target / "model.keras").is_file():
            self._init_run(target)
        else:
            self._init_saved_model(saved_model_dir(target))
        self.dicom_window = dicom_window or self.trained_window

    def _init_run(self, run_dir: Path) -> None:
        from tltf.export.exporter import RunArtifacts
        from tltf.run_dir import load_run_model

        artifacts = RunArtifacts.read(run_dir)
        self.model = load_run_model(run_dir)
        self.size = int(self.model.input.shape[1])
        self.class_names = artifacts.class_names
        self.threshold = artifacts.threshold
        dicom = getattr(artifacts.recipe.data, "dicom", None)  # only the sources that read image files have it
        self.trained_window = "auto" if dicom is None else dicom.window
        self.signature = None

    def _init_saved_model(self, version_dir: Path) -> None:
        import tensorflow as tf

        from tltf.export.signatures import BYTES_SIGNATURE, FLOAT_SIGNATURE

        signatures = tf.saved_model.load(str(version_dir)).signatures
        self.signature, self.float_signature = signatures[BYTES_SIGNATURE], signatures[FLOAT_SIGNATURE]
        self.model = None
        self.trained_window = "auto"  # a SavedModel does not know the window it was trained with

    def predict(self, paths: list[Path], batch_size: int = 64) -> list[Prediction]:
        """One row per path, in order. Files are decoded by a pool of threads (TensorFlow's decoders release
        the GIL) a batch ahead of the forward pass, so at most two batches of images are held at once."""
        from concurrent.futures import ThreadPoolExecutor

        rows = [Prediction(str(path)) for path in paths]
        chunks = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            pending = [pool.submit(self._load_or_error, row) for row in chunks[0]] if chunks else []
            for index, chunk in enumerate(chunks):
                loaded = [(row, future.result()) for row, future in zip(chunk, pending)]
                if index + 1 < len(chunks):
                    pending = [pool.submit(self._load_or_error, row) for row in chunks[index + 1]]
                good = [(row, item) for row, item in loaded if item is not None]
                if good:
                    self._fill([row for row, _ in good], [item for _, item in good])
        return rows

    def _load_or_error(self, row: Prediction):
        try:
            return self._load(Path(row.file))
        except TltfError as error:
            row.error = str(error)
            return None

    def _load(self, path: Path):
        """Decoded pixels (run) or the checked file bytes (SavedModel); `TltfError` if not an image."""
        from tltf.data.images import client_pixels, decode_file, decode_pixels

        if self.model is not None:
            return decode_file(path, self.size, self.dicom_window)
        if path.suffix.lower() in CLIENT_SUFFIXES:
            return client_pixels(path, self.dicom_window)  # full size, float: the float signature resizes
        try:
            data = path.read_bytes()
        except OSError as error:
            raise TltfError(f"{path}: cannot read: {error.strerror}") from None
        try:
            decode_pixels(data)  # the check the graph would fail on, per file
        except Exception:
            raise TltfError(f"{path}: not a decodable image (JPEG, PNG, BMP or GIF)") from None
        return data

    def _serve(self, item):
        """One file through the SavedModel: decoded pixels to the float signature, bytes to the bytes one."""
        import tensorflow as tf

        from tltf.export.signatures import BYTES_INPUT, FLOAT_INPUT

        if isinstance(item, np.ndarray):
            return self.float_signature(**{FLOAT_INPUT: tf.constant(item[None])})
        return self.signature(**{BYTES_INPUT: tf.constant([item])})

    def _fill(self, rows: list[Prediction], items: list) -> None:
        import tensorflow as tf

        from tltf.evaluate.evaluator import predict_probabilities
        from tltf.export.signatures import BYTES_INPUT
        from tltf.task import Task

        if self.model is not None:
            probabilities = predict_probabilities(self.model, np.stack(items))
            ids = Task(self.class_names).decide(probabilities, self.threshold)
            names = [self.class_names[i] for i in ids]
        else:
            outputs = [self._serve(item) for item in items] if any(isinstance(i, np.ndarray) for i in items) \
                else [self.signature(**{BYTES_INPUT: tf.constant(items)})]
            probabilities = np.concatenate([out["probabilities"].numpy() for out in outputs])
            ids = np.concatenate([out["class_id"].numpy() for out in outputs])
            names = [n.decode() for out in outputs for n in out["class_name"].numpy()]
        for i, row in enumerate(rows):
            row.class_id, row.class_name = int(ids[i]), names[i]
            per_class = [1.0 - probabilities[i], probabilities[i]] if probabilities.ndim == 1 else probabilities[i]
            row.probabilities = [float(p) for p in per_class]
            row.class_probability = row.probabilities[row.class_id]


def saved_model_dir(target: Path) -> Path:
    """A SavedModel folder, or the highest numeric version in a TF Serving model folder; `TltfError` if neither."""
    if (target / "saved_model.pb").is_file():
        return target
    versions = sorted((int(p.name), p) for p in target.iterdir() if p.name.isdigit()) if target.is_dir() else []
    if versions and (versions[-1][1] / "saved_model.pb").is_file():
        return versions[-1][1]
    raise TltfError(f"{target}: neither a tltf run directory (model.keras) nor a SavedModel (saved_model.pb)")


def format_predictions(rows: list[Prediction], fmt: str) -> str:
    """The rows as `table` (file, class, class probability, error), `json` (every field) or `csv`."""
    import csv
    import io
    import json

    records = [dataclasses.asdict(row) for row in rows]
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    columns = ["file", "class_name", "class_probability", "error"]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return buffer.getvalue()
    from tltf.evaluate.report import format_table

    table = [(r.file, r.class_name or "-", f"{r.class_probability:.4f}" if r.class_probability is not None else "-",
              r.error or "") for r in rows]
    return format_table(table, header=("file", "class", "class probability", "error")) + "\n"
