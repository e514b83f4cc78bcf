"""model_card.md: what an exported model is, how to call it, how well it did."""

from __future__ import annotations

import platform


def model_card_text(version_dir, run_dir, artifacts, model, parity) -> str:
    import keras
    import tensorflow as tf

    from tltf.evaluate.report import format_table, metrics_rows
    from tltf.version import __version__

    size = int(model.input.shape[1])
    from tltf.task import Task

    names = artifacts.class_names
    binary = Task(names).binary
    lines = [
        f"# {artifacts.recipe.name}, version {version_dir.name}",
        "",
        f"Exported from `{run_dir}` by tltf {__version__} (TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, Python {platform.python_version()}).",
        "",
        "## Classes",
        "",
        *[f"- {i}: {name}" for i, name in enumerate(names)],
        "",
        "## Input contract",
        "",
        f"- `serving_default`: `images`, float32 `[N, H, W, 3]`, RGB, raw 0–255 pixels (no normalisation). "
        f"Any H and W: resized in the graph (bilinear) to {size}×{size} and rounded to whole pixel values, "
        "as in training.",
        "- `serving_bytes`: `image_bytes`, string `[N]`, each an encoded JPEG, PNG, BMP or GIF file "
        "(base64 in TF Serving's JSON API: `{\"b64\": \"...\"}`). Grey is repeated to RGB, alpha is dropped, "
        "then the same resize. A string that is not an image fails the request with "
        "`Unknown image file format`.",
        "- DICOM (and TIFF) cannot be decoded by TF Serving: decode on the client (modality LUT, the window the "
        "model was trained with, `MONOCHROME1` inverted) and send float 0–255 pixels to `serving_default`, as "
        "`tltf predict --dicom-window` does.",
        "- Outputs of both: `probabilities` "
        + (f"`[N]`, the probability of `{names[1]}`" if binary else f"`[N, {len(names)}]`, softmax")
        + ", `class_id` int64 `[N]`, `class_name` string `[N]`.",
    ]
    if binary:
        lines.append(f"- Decision: `class_id = 1` when the probability ≥ {artifacts.threshold:.4f}, the threshold "
                     "chosen on validation by Youden's J.")
    lines += ["", "## Test metrics", "", "```", format_table(metrics_rows(artifacts.metrics)), "```", ""]
    if parity is not None:
        lines += ["## Parity check", "", "```", *parity.lines(), "```", ""]
    lines += ["## Recipe", "", "```yaml", artifacts.recipe.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)
