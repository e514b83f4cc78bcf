"""`tltf saliency`: Grad-CAM maps over image files, from a run directory or from its exported SavedModel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tltf.saliency.figures import write_saliency_figure


def write_saliency_files(target, paths, out_dir) -> list[Path]:
    """`OUT_DIR/<image stem>_saliency.png` for each image file: the image as the model takes it, beside it under
    the Grad-CAM map (with its colour scale) of the class the model decides (binary: at the threshold chosen on
    val), that class and its probability above. Returns the files.

    Args:
        target: a run directory (model.keras), or an exported SavedModel with a `saliency` signature (a version
            folder, or a model folder whose highest version is used).
        paths: image files.
        out_dir: created if missing.
    """
    from tltf.data.images import decode_file

    explain, size = _saliency_source(Path(target))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        image = decode_file(Path(path), size)
        heat_map, class_name, probability = explain(image[None])
        written.append(out_dir / f"{Path(path).stem}_saliency.png")
        write_saliency_figure(written[-1], image, heat_map, saliency_caption(class_name, probability))
    return written


def saliency_caption(class_name: str, probability: float) -> str:
    """What a saliency file says the model decided."""
    return f"decided: {class_name}, p {probability:.2f}"


def _saliency_source(target: Path):
    """`(fn(pixels [1,S,S,3]) -> (map [S,S], decided class name, its probability), S)` from a run directory or an
    exported SavedModel."""
    import tensorflow as tf

    from tltf.errors import TltfError
    from tltf.export.predict import saved_model_dir
    from tltf.export.signatures import FLOAT_INPUT, SALIENCY_SIGNATURE

    if (target / "model.keras").is_file():
        return _run_source(target)
    version_dir = saved_model_dir(target)
    signatures = tf.saved_model.load(str(version_dir)).signatures
    if SALIENCY_SIGNATURE not in signatures:
        raise TltfError(f"{version_dir}: this SavedModel has no {SALIENCY_SIGNATURE!r} signature (exported before "
                        "tltf had one, or from a model Grad-CAM cannot read); export its run again, or pass the run "
                        "directory")
    signature, serving = signatures[SALIENCY_SIGNATURE], signatures["serving_default"]
    size = int(signature.structured_outputs["saliency"].shape[1] or 0)

    def explain(pixels):
        inputs = {FLOAT_INPUT: tf.constant(pixels, tf.float32)}
        out = signature(**inputs)
        probabilities = np.asarray(out["probabilities"].numpy(), np.float64).reshape(len(pixels), -1)[0]
        class_id = int(np.asarray(out["class_id"].numpy()).reshape(-1)[0])
        name = serving(**inputs)["class_name"].numpy().reshape(-1)[0].decode()
        return out["saliency"].numpy()[0], name, _decided_probability(probabilities, class_id)

    return explain, size


def _run_source(run_dir: Path):
    """The explain function of a run directory's model.keras (its threshold and class names from metrics.json)."""
    import json

    from tltf.errors import TltfError
    from tltf.run_dir import load_run_model
    from tltf.saliency.grad_cam import GradCam

    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    threshold = metrics.get("val", {}).get("threshold", 0.5)
    members = [row["run"] for row in metrics.get("ensemble", {}).get("members", [])]
    if members:
        raise TltfError(f"{run_dir}: an ensemble of {len(members)} runs has no one feature map to explain; make the "
                        f"maps on a member (its runs: {', '.join(members)})")
    model = load_run_model(run_dir)
    try:
        cam = GradCam(model)
    except ValueError as problem:
        raise TltfError(f"{run_dir}: {problem}") from None
    names = metrics.get("class_names") or [str(i) for i in range(max(2, int(model.output.shape[-1])))]

    def explain(pixels):
        maps, probabilities = cam(pixels, threshold=threshold)
        scores = np.asarray(probabilities, np.float64).reshape(len(pixels), -1)[0]
        class_id = int(scores[0] >= threshold) if scores.size == 1 else int(scores.argmax())
        return maps[0], names[class_id], _decided_probability(scores, class_id)

    return explain, int(model.input.shape[1])


def _decided_probability(scores, class_id: int) -> float:
    """The probability of the decided class, from a binary model's one score or a multiclass model's row."""
    if scores.size == 1:
        return float(scores[0] if class_id == 1 else 1.0 - scores[0])
    return float(scores[class_id])
