"""Saliency figures: a heat map over its image, one image's readable figure, and the report's grid of telling
examples."""

from __future__ import annotations

import numpy as np

# Which test images the report explains: the most confident of each outcome.
EXAMPLES_PER_OUTCOME = 2


def overlay(image, heat_map, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB `[S, S, 3]`: the image in grey under the heat map in the jet colours."""
    import matplotlib

    image = np.asarray(image, np.float32)
    grey = image.mean(axis=-1) if image.ndim == 3 else image
    grey = np.repeat(grey[..., None], 3, axis=-1) / 255.0
    colours = matplotlib.colormaps["jet"](np.clip(heat_map, 0, 1))[..., :3]
    return (255 * np.clip((1 - alpha) * grey + alpha * colours, 0, 1)).astype(np.uint8)


def write_saliency_figure(path, image, heat_map, caption: str) -> None:
    """A saliency file a person can read: the image as the model takes it beside the same image under the heat
    map (jet, with its colour scale), the decided class and its probability above, at a readable size.

    Args:
        path: the png to write.
        image: uint8 `[S, S, 3]` (or `[S, S]`) pixels.
        heat_map: `[S, S]` in [0, 1]: where the evidence for the decided class is.
        caption: what the model decided, e.g. "decided: pneumonia, p 0.93".
    """
    from tltf.evaluate.plots import _pyplot

    image = np.asarray(image)
    rgb = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 4.0), gridspec_kw={"width_ratios": [1, 1.1]})
    left.imshow(rgb.astype(np.uint8))
    left.set_title("the image as the model takes it", fontsize=9)
    right.imshow(rgb.astype(np.uint8))
    shown = right.imshow(np.clip(heat_map, 0, 1), cmap="jet", alpha=0.4, vmin=0, vmax=1)
    right.set_title("Grad-CAM: where the evidence is", fontsize=9)
    for ax in (left, right):
        ax.axis("off")
    bar = fig.colorbar(shown, ax=right, fraction=0.046, pad=0.04)
    bar.set_label("evidence for the decided class (relative)", fontsize=8)
    fig.suptitle(caption, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def telling_examples(labels, scores, threshold: float, class_names) -> list[tuple[str, int]]:
    """`(caption, index)` of the images the report explains: binary, the most confident true positives, true
    negatives, false positives and false negatives; multiclass, the most confident right and wrong decisions."""
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, np.float64)
    chosen = []
    if scores.ndim == 1:
        predicted = (scores >= threshold).astype(int)
        confidence = np.where(predicted == 1, scores, 1 - scores)
        outcomes = (("true positive", (predicted == 1) & (labels == 1)),
                    ("true negative", (predicted == 0) & (labels == 0)),
                    ("false positive", (predicted == 1) & (labels == 0)),
                    ("false negative", (predicted == 0) & (labels == 1)))
    else:
        predicted, confidence = scores.argmax(axis=1), scores.max(axis=1)
        outcomes = (("right", predicted == labels), ("wrong", predicted != labels))
    for outcome, mask in outcomes:
        for index in np.flatnonzero(mask)[np.argsort(-confidence[mask], kind="stable")][:EXAMPLES_PER_OUTCOME]:
            caption = (f"{outcome}: {class_names[labels[index]]} → {class_names[predicted[index]]}, "
                       f"p {confidence[index]:.2f}")
            chosen.append((caption, int(index)))
    return chosen


def write_saliency_grid(path, model, images, labels, scores, threshold: float, class_names) -> int:
    """Writes a grid of `telling_examples` with their Grad-CAM maps (for the predicted class); returns how many.

    Args:
        path: the png to write.
        model: the classifier.
        images: the split's images (an array or an `ImageStore`), in the order of `labels` and `scores`.
        labels: int class ids.
        scores: the model's scores (`[N]` binary, `[N,C]` multiclass).
        threshold: binary decision threshold.
        class_names: names of the classes.
    """
    from tltf.evaluate.plots import _pyplot
    from tltf.saliency.grad_cam import GradCam

    examples = telling_examples(labels, scores, threshold, class_names)
    if not examples:
        return 0
    picked = np.asarray(images[np.array([index for _, index in examples])])
    rgb = picked if picked.ndim == 4 else np.repeat(picked[..., None], 3, axis=-1)
    maps, _ = GradCam(model)(rgb, threshold=threshold)
    plt = _pyplot()
    columns = min(4, len(examples))
    rows = -(-len(examples) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (caption, _), image, heat_map in zip(axes.ravel(), examples, rgb, maps):
        ax.imshow(overlay(image, heat_map))
        ax.set_title(caption, fontsize=7)
    fig.suptitle("Grad-CAM on test images: where the evidence for the decided class is", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(examples)
