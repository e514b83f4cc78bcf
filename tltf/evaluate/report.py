"""Human-readable summaries: the console metrics table and report.md."""

from __future__ import annotations

from pathlib import Path

from tltf.evaluate.calibration import ECE_BINS


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4f}"
    return str(value)


def metrics_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """(metric, val, test) rows for the splits in `metrics`."""
    val, test = metrics.get("val", {}), metrics.get("test", {})
    rows = [("n", _fmt(val.get("n")), _fmt(test.get("n")))]
    for key in ("auc",):
        rows.append((key, _fmt(val.get(key)), _fmt(test.get(key))))
    rows.append(("auc 95% CI", *(_interval(m) for m in (val, test))))
    accuracy = "accuracy (0.5)" if "at_0_5" in test else "accuracy"
    rows.append((accuracy, _fmt(val.get("accuracy")), _fmt(test.get("accuracy"))))
    if "ece" in test:
        rows.append((f"ECE ({ECE_BINS} bins)", _fmt(val.get("ece")), _fmt(test.get("ece"))))
    if "ece_uncalibrated" in test:
        rows.append(("ECE before calibration", _fmt(val.get("ece_uncalibrated")), _fmt(test.get("ece_uncalibrated"))))
    if "at_0_5" in test:
        for where, label in (("at_0_5", "0.5"), ("at_threshold", f"val threshold {test['threshold']:.3f}")):
            for rate in ("sensitivity", "specificity"):
                rows.append((f"{rate} @ {label}", _fmt(val[where][rate] if where in val else None),
                             _fmt(test[where][rate])))
    return rows


def _interval(split_metrics: dict) -> str:
    if "auc_ci" not in split_metrics:
        return "–"
    if split_metrics["auc_ci"] is None:
        return "not computed (evaluate.bootstrap: 0)"
    return "[" + ", ".join(_fmt(x) for x in split_metrics["auc_ci"]) + "]"


def format_table(rows, header=("metric", "val", "test")) -> str:
    """A plain-text table, columns padded to fit."""
    rows = [tuple(header)] + [tuple(r) for r in rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def health_lines(metrics: dict) -> list[str]:
    """What went wrong in training, one line per event (empty for a healthy run)."""
    health = metrics.get("health") or {}
    return [f"training health: {event['message']}" for event in health.get("events", [])]


def adaptation_lines(metrics: dict) -> list[str]:
    """The domain-adaptation results, as text lines (empty without adaptation)."""
    if "a_distance" not in metrics:
        return []
    judged = metrics.get("adaptation", {})
    lines = ["", "Domain adaptation (target domain, threshold 0.5):", ""]
    for key, label in (("target", judged.get("title", "adapted")), ("target_source_only", "source only, same budget")):
        if key in metrics:
            lines.append(f"- {label}: target AUC {_fmt(metrics[key]['auc'])}, "
                         f"accuracy {_fmt(metrics[key]['accuracy'])}")
    if "target" not in metrics:
        lines.append("- the target has no labels: no target AUC or accuracy; judged without labels (the "
                     "A-distance below and, with a source-only baseline, the verdict)")
    distance = metrics["a_distance"]
    lines.append(f"- proxy A-distance source↔target: {_fmt(distance['before'])} before, "
                 f"{_fmt(distance['after'])} after")
    if "select" in judged:
        lines.append(f"- epoch chosen by: {judged['select']}")
    for name, choice in judged.get("selection", {}).items():
        accuracy = f", target accuracy {_fmt(choice['target_accuracy'])}" if "target_accuracy" in choice else ""
        lines.append(f"  - {name} would choose epoch {choice['epoch']}{accuracy}")
    if "domain_accuracy_warning" in judged:
        lines.append(f"- warning: {judged['domain_accuracy_warning']}")
    if "dev_warning" in judged:
        lines.append(f"- warning: {judged['dev_warning']}")
    if "message" in judged:
        lines.append(f"- {judged['message']}")
    return lines


def calibration_lines(metrics: dict) -> list[str]:
    """How the probabilities were calibrated, for report.md (empty when they were not)."""
    calibration = metrics.get("calibration")
    if not calibration:
        return []
    if calibration["method"] == "platt":
        fitted = f"Platt scaling (logit × {calibration['scale']:.3f} {calibration['shift']:+.3f})"
    else:
        fitted = f"temperature scaling (T = {calibration['temperature']:.3f})"
    return ["", f"Probabilities calibrated by {fitted}, fitted on {calibration['fitted_on']} and folded into the "
            "model's output layer (model.keras and its export give calibrated probabilities); the val threshold "
            "and every metric above are the calibrated model's. ECE: the count-weighted mean gap between accuracy "
            f"and confidence over {ECE_BINS} equal-width confidence bins."]


def confusion_lines(confusion, class_names) -> list[str]:
    """The confusion matrix as text, each row and column labelled with its class."""
    rows = [["true \\ predicted", *class_names]]
    rows += [[name, *map(str, counts)] for name, counts in zip(class_names, confusion)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths)))
            for row in rows]


def single_split_rows(metrics: dict) -> list[tuple[str, str]]:
    """(metric, value) rows for one split's metrics (`tltf evaluate`)."""
    return [(name, value) for name, _, value in metrics_rows({"test": metrics})]


def decision_rule(metrics: dict) -> str:
    """How a run decides a class: at the threshold chosen on val (binary), or the most probable class."""
    threshold = metrics["test"].get("threshold")
    return f"threshold {threshold:.3f}, chosen on val" if threshold is not None else "the most probable class"


def metrics_title(metrics: dict) -> str:
    """"Metrics", saying which split the test column holds when the data has no test split of its own."""
    split = metrics["test"].get("split", "test")
    if split == "test":
        return "Metrics"
    return f"Metrics (the data has no test split: the test column is {split.split()[0]} again)"


def write_report(path, title: str, summary: list[str], metrics: dict, plan_rows) -> None:
    """Writes report.md: what ran, the plan, the metrics and the figures.

    Args:
        path: the file to write.
        title: the run's name.
        summary: markdown bullet lines saying what ran (`tltf.plan_text.run_summary`).
        metrics: what metrics.json holds.
        plan_rows: `TrainingPlan.summary_rows()`.
    """
    lines = [f"# tltf run: {title}", "", *summary, *_plan_lines(metrics, plan_rows)]
    lines += ["", f"## {metrics_title(metrics)}", "", "| metric | val | test |", "|---|---|---|"]
    for row in metrics_rows(metrics):
        lines.append("| " + " | ".join(row) + " |")
    lines += calibration_lines(metrics)
    lines += adaptation_lines(metrics)
    health = metrics.get("health", {}).get("status", "ok")
    lines += ["", f"## Training health: {health}", ""] + [f"- {line}" for line in health_lines(metrics)]
    lines += [
        "",
        f"Confusion matrix (rows true, columns predicted; {decision_rule(metrics)}, as `tltf predict` and the "
        "export decide):",
        "",
        "```",
        *confusion_lines(metrics["test"]["confusion"], metrics["class_names"]),
        "```",
        "",
        "![ROC](roc.png)" + (" ![learning curves](learning_curves.png)" if plan_rows else "")
        + " ![confusion](confusion_matrix.png) "
        "![reliability](reliability.png)"
        + (" ![embedding](embedding.png)" if "a_distance" in metrics else ""),
        "",
    ]
    if (Path(path).parent / "saliency.png").is_file():
        lines += ["## Where the model looks", "",
                  "Grad-CAM (the backbone's last feature map, weighted by the gradient of the decided class's "
                  "logit) on the test images it decided most confidently, right and wrong; red is where the "
                  "evidence for the decision is.", "", "![saliency](saliency.png)", ""]
    with open(path, "w") as handle:
        handle.write("\n".join(lines))


def _plan_lines(metrics: dict, plan_rows) -> list[str]:
    """The best epoch and the plan's table (nothing for a run that trained nothing)."""
    if not plan_rows:
        return []
    budget = metrics.get("budget") or {}
    stopped = (f"- stopped early: {budget['epochs_run']} of {budget['epochs_planned']} epochs run, "
               f"{budget['steps_saved']:,} optimizer steps saved" if budget.get("steps_saved") else "")
    return [f"- best checkpoint (by validation AUC): epoch {metrics.get('best_epoch', '–')}",
            *([stopped] if stopped else []), "", "## Plan", "",
            "| phase | epochs | lr | backbone | trainable params | frozen params | feature cache |",
            "|---|---|---|---|---|---|---|",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in plan_rows)]
