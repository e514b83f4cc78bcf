"""Matplotlib figures for a run: ROC curve, learning curves, confusion matrix, reliability diagram."""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; works without a display
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path, labels, probabilities, class_names, title="ROC"):
    """Writes the ROC curve (one curve per class, one-vs-rest, for multiclass)."""
    from sklearn.metrics import roc_curve

    from tltf.evaluate.metrics import roc_auc
    from tltf.task import Task

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    labels = np.asarray(labels).ravel()
    probabilities = np.asarray(probabilities)
    if Task(class_names).binary:
        curves = [(class_names[1], labels == 1, probabilities.reshape(-1))]
    else:
        curves = [(name, labels == c, probabilities[:, c]) for c, name in enumerate(class_names)]
    for name, positive, score in curves:
        if positive.all() or not positive.any() or not np.isfinite(score).all():
            continue  # no curve for one class alone, or for a diverged model's non-finite scores
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(positive, score):.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set(xlabel="false positive rate (1 − specificity)", ylabel="true positive rate (sensitivity)", title=title)
    if ax.get_legend_handles_labels()[0]:  # none when no curve could be drawn (a diverged model)
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_learning_curves(path, history: dict, phase_starts: list[tuple[str, int]] = ()):
    """Writes loss and AUC per epoch for train and val, with phase boundaries marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for ax, metric in zip(axes, ("loss", "auc")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = np.asarray(history.get(prefix + metric) or [], float)
            shown = np.isfinite(values)  # epochs that did not validate have NaN validation metrics
            if shown.any():
                ax.plot(epochs[: len(values)][shown], values[shown], style, marker="." if not shown.all() else None,
                        label=(prefix or "train_") + metric)
        for name, start in phase_starts:
            ax.axvline(start + 0.5, color="grey", linewidth=0.6)
            ax.text(start + 0.6, ax.get_ylim()[1], name, fontsize=7, va="top", color="grey")
        ax.set(xlabel="epoch", title=metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(path, matrix, class_names, title="confusion matrix"):
    """Writes the confusion matrix with counts in each cell."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    size = max(4, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# A bin with fewer images than this says little: one image is accuracy 0 or 1.
FEW_IN_BIN = 5


def bin_annotations(table: dict) -> list[tuple]:
    """`(confidence, accuracy, "n=<count>", few)` for each non-empty bin of `reliability_bins`; `few`: fewer
    than `FEW_IN_BIN` images."""
    return [(float(x), float(y), f"n={int(n)}", int(n) < FEW_IN_BIN)
            for x, y, n in zip(table["confidence"], table["accuracy"], table["count"]) if n > 0]


def plot_reliability(path, per_split: dict, uncalibrated: dict | None = None, bins: int | None = None):
    """Writes the reliability diagram: accuracy against mean confidence per equal-width bin, one panel per split
    (the calibrated model's solid, before calibration dashed), with the ECE in each legend; each of the model's
    bins says how many images it holds, and those with fewer than `FEW_IN_BIN` are hollow.

    Args:
        path: the png to write.
        per_split: `{"val": (labels, scores), "test": (labels, scores)}`.
        uncalibrated: the same before calibration, or None.
        bins: confidence bins (default `calibration.ECE_BINS`).
    """
    from tltf.evaluate.calibration import ECE_BINS, expected_calibration_error, reliability_bins

    bins = bins or ECE_BINS
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(per_split), figsize=(5 * len(per_split), 4.6), squeeze=False)
    for ax, (split, (labels, scores)) in zip(axes[0], per_split.items()):
        curves = [("calibrated" if uncalibrated else "model", "-o", labels, scores)]
        if uncalibrated:
            curves.append(("before calibration", "--s", *uncalibrated[split]))
        for index, (name, style, curve_labels, curve_scores) in enumerate(curves):
            table = reliability_bins(curve_labels, curve_scores, bins)
            filled = table["count"] > 0
            ece = expected_calibration_error(curve_labels, curve_scores, bins)
            (line,) = ax.plot(table["confidence"][filled], table["accuracy"][filled], style, markersize=4,
                              label=f"{name} (ECE {ece:.3f})")
            if index == 0:  # the delivered model's bins: how many images each holds; the few are hollow
                for x, y, text, few in bin_annotations(table):
                    ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
                    if few:
                        ax.plot([x], [y], "o", markersize=7, markerfacecolor="white", color=line.get_color())
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="confidence (probability of the decided class)",
               ylabel="accuracy", title=f"reliability on {split} ({bins} bins; n = images in a bin)")
        ax.plot([], [], "o", markerfacecolor="white", color="grey", label=f"fewer than {FEW_IN_BIN} images")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
