"""`tltf saliency`: Grad-CAM maps over image files, from a run directory or from its exported SavedModel."""

from __future__ import annotations

from pathlib import Path

from tltf.saliency.figures import overlay


def write_saliency_files(target, paths, out_dir) -> list[Path]:
    """`OUT_DIR/<image stem>_saliency.png` for each image file: the image as the model takes it, under the
    Grad-CAM map of the class the model decides (binary: at the threshold chosen on val). Returns the files.

    Args:
        target: a run directory (model.keras), or an exported SavedModel with a `saliency` signature (a version
            folder, or a model folder whose highest version is used).
        paths: image files.
        out_dir: created if missing.
    """
    from PIL import Image

    from tltf.data.images import decode_file

    explain, size = _saliency_source(Path(target))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        image = decode_file(Path(path), size)
        written.append(out_dir / f"{Path(path).stem}_saliency.png")
        Image.fromarray(overlay(image, explain(image[None])[0])).save(written[-1])
    return written


def _saliency_source(target: Path):
    """`(fn(pixels [1,S,S,3]) -> maps [1,S,S], S)` from a run directory or an exported SavedModel."""
    import json

    import tensorflow as tf

    from tltf.errors import TltfError
    from tltf.export.predict import saved_model_dir
    from tltf.export.signatures import FLOAT_INPUT, SALIENCY_SIGNATURE
    from tltf.saliency.grad_cam import GradCam

    if (target / "model.keras").is_file():
        from tltf.run_dir import load_run_model

        metrics = target / "metrics.json"
        threshold = json.loads(metrics.read_text())["val"].get("threshold", 0.5) if metrics.is_file() else 0.5
        model = load_run_model(target)
        try:
            cam = GradCam(model)
        except ValueError as problem:
            raise TltfError(f"{target}: {problem}") from None
        return (lambda pixels: cam(pixels, threshold=threshold)[0]), int(model.input.shape[1])
    version_dir = saved_model_dir(target)
    signatures = tf.saved_model.load(str(version_dir)).signatures
    if SALIENCY_SIGNATURE not in signatures:
        raise TltfError(f"{version_dir}: this SavedModel has no {SALIENCY_SIGNATURE!r} signature (exported before "
                        "tltf had one, or from a model Grad-CAM cannot read); export its run again, or pass the run "
                        "directory")
    signature = signatures[SALIENCY_SIGNATURE]
    size = int(signature.structured_outputs["saliency"].shape[1] or 0)
    def explain(pixels):
        return signature(**{FLOAT_INPUT: tf.constant(pixels, tf.float32)})["saliency"].numpy()

    return explain, size
