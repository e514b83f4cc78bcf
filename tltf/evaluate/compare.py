"""Per-image predictions of a run (`predictions.csv`), and paired comparisons of runs on the same images.

Every run directory keeps its val and test scores image by image, so two
runs evaluated on the same test images can be compared paired
(`tltf.evaluate.paired`): `tltf compare RUN_A RUN_B`.
"""

from __future__ import annotations

import csv
import itertools
import os
from pathlib import Path

import numpy as np

from tltf.errors import TltfError

PREDICTIONS_FILE = "predictions.csv"


def write_predictions(path: Path, per_split: dict, class_names: list[str]) -> None:
    """`split,index,label,p_<class>...`: one row per val and test image, scores in class-id order.

    Args:
        path: the CSV to write.
        per_split: split name → `(labels [N], scores)`, scores `[N]` (binary, the positive class) or `[N,C]`.
        class_names: the class names, in class-id order.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "index", "label", *[f"p_{name}" for name in class_names]])
        for split, (labels, scores) in per_split.items():
            scores = np.asarray(scores, np.float64)
            per_class = np.stack([1 - scores, scores], axis=1) if scores.ndim == 1 else scores
            for index, (label, row) in enumerate(zip(labels, per_class)):
                writer.writerow([split, index, int(label), *[repr(float(p)) for p in row]])


def read_predictions(run_dir: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """`(labels [N], scores)` of one split of a run (`[N]` positive-class scores when binary, else `[N,C]`)."""
    path = Path(run_dir) / PREDICTIONS_FILE
    if not path.is_file():
        raise TltfError(f"{path}: no per-image predictions; `tltf evaluate {run_dir} --split {split}` writes them")
    per_split = _read_all(path)
    if split not in per_split:
        raise TltfError(f"{path}: no {split} rows; `tltf evaluate {run_dir} --split {split}` writes them")
    return per_split[split]


def update_predictions(run_dir: Path, split: str, labels, scores, class_names: list[str]) -> None:
    """Replaces one split's rows of `predictions.csv` (keeping the other splits'), written aside and renamed."""
    path = Path(run_dir) / PREDICTIONS_FILE
    per_split = _read_all(path) if path.is_file() else {}
    per_split[split] = (labels, scores)
    aside = path.with_name(path.name + ".tmp")
    write_predictions(aside, per_split, class_names)
    os.replace(aside, path)


def _read_all(path: Path) -> dict:
    rows = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            labels, scores = rows.setdefault(row["split"], ([], []))
            labels.append(int(row["label"]))
            scores.append([float(value) for key, value in row.items() if key.startswith("p_")])
    per_split = {}
    for split, (labels, scores) in rows.items():
        scores = np.asarray(scores)
        per_split[split] = np.asarray(labels), (scores[:, 1] if scores.shape[1] == 2 else scores)
    return per_split


def compare_runs(run_dirs: list, split: str = "test") -> list[dict]:
    """Every pair of runs, paired on their shared `split` images: DeLong for binary, a paired bootstrap else.

    Returns one dict per pair: `a`, `b`, `auc_a`, `auc_b`, `difference` (b − a), `ci`, `p`, `method`.

    Raises:
        TltfError: a run has no predictions, or two runs were not evaluated on the same images.
    """
    from tltf.evaluate.paired import delong_test, paired_bootstrap

    if len(run_dirs) < 2:
        raise TltfError("compare needs two run directories or more")
    loaded = {str(run): read_predictions(run, split) for run in run_dirs}
    pairs = []
    for a, b in itertools.combinations(loaded, 2):
        (labels_a, scores_a), (labels_b, scores_b) = loaded[a], loaded[b]
        if len(labels_a) != len(labels_b) or not np.array_equal(labels_a, labels_b) or \
                np.ndim(scores_a) != np.ndim(scores_b):
            raise TltfError(f"{b}: its {split} images are not {a}'s ({len(labels_b)} against {len(labels_a)} images, "
                            "or other labels); compare needs runs evaluated on the same test set")
        test = delong_test if np.ndim(scores_a) == 1 else paired_bootstrap
        result = test(labels_a, scores_a, scores_b)
        pairs.append({"a": a, "b": b, "auc_a": result.auc_a, "auc_b": result.auc_b, "difference": result.difference,
                      "ci": [float(c) for c in result.ci], "p": result.p, "method": result.method})
    return pairs
