"""export_run: a run directory → a TF Serving model version, verified.

Layout: `OUT/<model name>/<version>/` (saved_model.pb, variables/,
assets.extra/tf_serving_warmup_requests) and `OUT/<model name>/model_card.md`.
The version is built in a hidden temporary folder, verified there, and
renamed into place only when it is complete, so a killed or failed export
leaves no version folder for TF Serving to pick up.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Optional

from tltf.errors import TltfError
from tltf.export.parity import ParityReport, check_parity, encode_images
from tltf.export.signatures import (
    BYTES_SIGNATURE,
    FLOAT_SIGNATURE,
    SALIENCY_SIGNATURE,
    input_signatures,
    saliency_function,
    serving_functions,
)
from tltf.export.warmup import write_warmup_requests
from tltf.log import logger


@dataclasses.dataclass
class ExportResult:
    """What `export_run` wrote.

    Example:
        result = tltf.export.export_run("runs/pneumonia-mobilenet-20261126T120000Z", out="serving")
        print(result.version_dir, result.parity.jpeg_sensitivity)

    Args:
        version_dir: the SavedModel version folder (`OUT/<name>/<version>/`).
        model_card: `OUT/<name>/model_card.md`.
        parity: the parity report, or None with `verify=False`.
    """

    version_dir: Path
    model_card: Path
    parity: Optional[ParityReport]


@dataclasses.dataclass
class RunArtifacts:
    """What an export needs from a finished run directory."""

    recipe: object
    metrics: dict
    class_names: list
    threshold: float

    @classmethod
    def read(cls, run_dir: Path) -> "RunArtifacts":
        from tltf.run_dir import PARTIAL_SUFFIX, load_run_recipe

        if run_dir.name.endswith(PARTIAL_SUFFIX):
            final = run_dir.with_name(run_dir.name[: -len(PARTIAL_SUFFIX)])
            raise TltfError(f"{run_dir}: an interrupted run, not a finished one; finish it with "
                            f"`tltf fit RECIPE --run-dir {final}` (it continues where it stopped), then export {final}")
        for name in ("model.keras", "recipe.yaml", "metrics.json"):
            if not (run_dir / name).is_file():
                raise TltfError(f"{run_dir}: not a finished tltf run (no {name}); pass a run directory from tltf fit")
        recipe = load_run_recipe(run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        threshold = metrics.get("val", {}).get("threshold", 0.5)
        return cls(recipe, metrics, metrics["class_names"], float(threshold))


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()] if model_dir.is_dir() else []
    return max(versions, default=0) + 1


def export_run(run_dir, out="exports", version: Optional[int] = None, force: bool = False, verify: bool = True,
               verify_images: int = 16) -> ExportResult:
    """Exports a run's best model for TF Serving and checks it against Keras.

    Example:
        result = export_run("runs/pneumonia-mobilenet-20261126T120000Z", out="serving")
        print(result.version_dir, result.parity.float_max_abs_diff)

    Args:
        run_dir: a finished `tltf fit` run directory.
        out: the TF Serving base folder; the model goes in `out/<recipe name>/`.
        version: the version number; default one more than the highest present.
        force: replace an existing version folder.
        verify: run the parity check before the version is put in place.
        verify_images: how many validation images the parity check uses.

    Raises:
        TltfError: not a run directory, an existing version without `force`, or a failed parity check.
    """
    from tltf.data.sources import load_splits
    from tltf.run_dir import load_run_model

    run_dir = Path(run_dir)
    artifacts = RunArtifacts.read(run_dir)
    model = load_run_model(run_dir)
    model_dir = Path(out) / artifacts.recipe.name
    version = version if version is not None else next_version(model_dir)
    version_dir = model_dir / str(version)
    if version_dir.exists() and not force:
        raise TltfError(f"{version_dir}: version {version} already exists; pass --force to replace it or --version N")

    splits = load_splits(artifacts.recipe.data, seed=artifacts.recipe.train.seed)
    samples = splits.val.images[: max(verify_images, 2)]
    created = not model_dir.exists()
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".tmp-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_saved_model(staging, _serving_model(model), artifacts, samples)
        parity = _verified(staging, model, samples[:verify_images], run_dir) if verify else None
        _put_in_place(staging, version_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(model_dir, ignore_errors=True)  # a model folder with nothing in it helps nobody
        raise
    card = _write_model_card(model_dir, version_dir, run_dir, artifacts, model, parity)
    logger.info(f"exported {version_dir}")
    return ExportResult(version_dir, card, parity)


def _serving_model(model):
    """The model the SavedModel serves: LoRA adapters merged into their kernels (the parity check then compares
    it with the unmerged model)."""
    from tltf.models.lora import has_lora, merged_lora_copy

    if not has_lora(model):
        return model
    logger.info("merging the LoRA adapters into their kernels for serving")
    return merged_lora_copy(model)


def _write_saved_model(staging: Path, model, artifacts: RunArtifacts, samples) -> None:
    import keras

    logger.info(f"writing SavedModel ({FLOAT_SIGNATURE}, {BYTES_SIGNATURE}, {SALIENCY_SIGNATURE}) to {staging}")
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve_images, serve_bytes = serving_functions(model, artifacts.class_names, artifacts.threshold)
    signatures = input_signatures()
    archive.add_endpoint(FLOAT_SIGNATURE, serve_images, input_signature=signatures[FLOAT_SIGNATURE])
    archive.add_endpoint(BYTES_SIGNATURE, serve_bytes, input_signature=signatures[BYTES_SIGNATURE])
    try:
        saliency = saliency_function(model, artifacts.threshold)
    except ValueError as problem:  # a model Grad-CAM cannot read is still served
        logger.warning(f"no {SALIENCY_SIGNATURE} signature: {problem}")
    else:
        archive.add_endpoint(SALIENCY_SIGNATURE, saliency, input_signature=signatures[SALIENCY_SIGNATURE])
    archive.write_out(str(staging), verbose=False)
    write_warmup_requests(staging, artifacts.recipe.name, samples[:2].astype("float32"),
                          encode_images(samples[:2], "png"))


def _verified(staging: Path, model, images, run_dir: Path) -> ParityReport:
    """The parity report; a `TltfError` when the SavedModel does not answer as Keras does."""
    parity = check_parity(staging, model, images)
    for line in parity.lines():
        logger.info(line)
    if not parity.ok:
        raise TltfError(f"{run_dir}: the exported model does not match the Keras model "
                        f"(float {parity.float_max_abs_diff:.2e}, PNG {parity.png_max_abs_diff:.2e}, "
                        f"JPEG {parity.jpeg_max_abs_diff:.2e}); nothing was exported")
    return parity


def _put_in_place(staging: Path, version_dir: Path) -> None:
    if version_dir.exists():
        # --force: swap by renames, so TF Serving never sees a half-replaced version.
        old = version_dir.with_name(f".old-{version_dir.name}-{os.getpid()}")
        os.rename(version_dir, old)
        os.rename(staging, version_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, version_dir)


def _write_model_card(model_dir: Path, version_dir: Path, run_dir: Path, artifacts: RunArtifacts, model,
                      parity: Optional[ParityReport]) -> Path:
    from tltf.export.model_card import model_card_text

    card = model_dir / "model_card.md"
    partial = model_dir / ".model_card.md.partial"
    partial.write_text(model_card_text(version_dir, run_dir, artifacts, model, parity))
    os.replace(partial, card)
    return card
