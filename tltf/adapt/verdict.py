"""Did adaptation work? The adapted model's target predictions against the source-only model's, without labels."""

from __future__ import annotations

import numpy as np

from tltf.adapt.selection import as_class_probabilities

# A model whose largest predicted class takes at least this share of the target images has collapsed onto it,
# unless the source-only model already predicted that share there.
COLLAPSE_SHARE = 0.9


def prediction_summary(outputs: np.ndarray) -> dict:
    """Share of target images predicted as each class, mean prediction entropy (nats), the effective number of
    predicted classes (`exp` of the predicted-class distribution's entropy)."""
    probabilities = as_class_probabilities(outputs)
    shares = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1]) / len(probabilities)
    entropy = -np.sum(probabilities * np.log(np.clip(probabilities, 1e-12, 1.0)), axis=1).mean()
    present = shares[shares > 0]
    return {"predicted_share": [round(float(s), 4) for s in shares], "mean_entropy": round(float(entropy), 4),
            "effective_classes": round(float(np.exp(-np.sum(present * np.log(present)))), 3)}


def adaptation_verdict(adapted_outputs, source_only_outputs, adapted_criterion=None, source_only_criterion=None,
                       criterion: str = "dev", criterion_problem: str = "") -> dict:
    """`adaptation.verdict` of `metrics.json`: `"adapted"` (nothing seen against it), `"collapsed"` or `"worse"`.

    - collapsed: the adapted model puts at least 90% of the target images in one class, or has fewer than half
      the source-only model's effective classes, while the source-only model does neither;
    - worse: the unsupervised criterion (`dev`: lower is better; `snd`: higher is better) of the adapted
      model is worse than the source-only model's.

    Args:
        adapted_outputs: the adapted classifier's outputs on the target images.
        source_only_outputs: the source-only classifier's outputs on the same images.
        adapted_criterion: the adapted model's criterion value (None: not compared).
        source_only_criterion: the source-only model's.
        criterion: `"dev"` or `"snd"`.
        criterion_problem: why the criterion cannot judge these models (`selection.dev_problem`); then the two
            values are reported but not compared.
    """
    adapted, source_only = prediction_summary(adapted_outputs), prediction_summary(source_only_outputs)
    agreement = float(np.mean(as_class_probabilities(adapted_outputs).argmax(1)
                              == as_class_probabilities(source_only_outputs).argmax(1)))
    reasons = []
    adapted_top, source_top = max(adapted["predicted_share"]), max(source_only["predicted_share"])
    if adapted_top >= COLLAPSE_SHARE and source_top < COLLAPSE_SHARE:
        reasons.append(f"it predicts {adapted_top:.0%} of the target images as one class (source-only: "
                       f"{source_top:.0%})")
    elif adapted["effective_classes"] < 0.5 * source_only["effective_classes"]:
        reasons.append(f"its target predictions spread over {adapted['effective_classes']:.1f} effective classes "
                       f"against source-only's {source_only['effective_classes']:.1f}")
    verdict = "collapsed" if reasons else "adapted"
    if adapted_criterion is not None and source_only_criterion is not None and not criterion_problem:
        lower_is_better = criterion == "dev"
        worse = adapted_criterion > source_only_criterion if lower_is_better else \
            adapted_criterion < source_only_criterion
        if worse:
            name = "DEV risk" if lower_is_better else "soft neighbourhood density"
            reasons.append(f"its {name} is worse than source-only's ({adapted_criterion:.4f} against "
                           f"{source_only_criterion:.4f})")
            verdict = verdict if verdict == "collapsed" else "worse"
    return {"verdict": verdict, "reasons": reasons, "agreement": round(agreement, 4), "adapted": adapted,
            "source_only": source_only, "criterion": criterion,
            "criterion_adapted": adapted_criterion, "criterion_source_only": source_only_criterion,
            **({"criterion_problem": criterion_problem} if criterion_problem else {})}


def verdict_message(result: dict) -> str:
    """One paragraph for the console and report.md."""
    if result["verdict"] == "adapted":
        unjudged = (f"; the two were not compared by DEV: {result['criterion_problem']}"
                    if result.get("criterion_problem") else "")
        return (f"adaptation verdict: nothing seen against the adapted model (its target predictions agree with "
                f"source-only's on {result['agreement']:.0%} of the images){unjudged}")
    return (f"adaptation verdict: {result['verdict']}: {'; '.join(result['reasons'])}. "
            f"Use the source-only model (source_only/model.keras) for the target domain, or change the adaptation "
            f"settings")
