"""How well adaptation worked: target metrics, the proxy A-distance and a 2-D embedding plot."""

from __future__ import annotations

import numpy as np

from tltf.log import logger


def domain_features(model, source_images, target_images, batch_size: int, limit: int = 1000):
    """Pooled backbone features of up to `limit` source and target images."""
    from tltf.train.features import extract_features

    return tuple(extract_features(model, source_images[:limit], target_images[:limit], batch_size=batch_size,
                                  verbose=0))


def target_metrics(model, target_domain, class_names, batch_size: int) -> dict:
    """AUC and accuracy (at 0.5 or argmax) on the target's labelled images."""
    from tltf.evaluate.evaluator import predict_probabilities
    from tltf.evaluate.metrics import evaluate_predictions

    evaluation = target_domain.evaluation
    probabilities = predict_probabilities(model, evaluation.images, batch_size)
    metrics = evaluate_predictions(evaluation.labels, probabilities, class_names, threshold=0.5, bootstrap=0)
    return {"auc": metrics["auc"], "accuracy": metrics["accuracy"]}


def adaptation_report(model, baseline, splits, target_domain, before, run_dir, seed: int, batch_size: int,
                      adaptation=None, history=None) -> dict:
    """`a_distance` before and after, `target` (and `target_source_only` for a baseline) metrics, and
    `adaptation`: how the epoch was chosen and what the criteria would have chosen, the domain classifier's
    trouble if any, and the verdict against the baseline; writes embedding.png.

    Args:
        model: the adapted classifier.
        baseline: the source-only classifier trained at the same budget, or None.
        splits: the source's splits.
        target_domain: the `TargetData`.
        before: `domain_features` of the model before adaptation.
        run_dir: where embedding.png goes.
        seed: seeds the A-distance's split and the criteria's samples.
        batch_size: inference batch size.
        adaptation: the recipe's `adaptation` section (None: only the metrics above).
        history: the run's per-epoch logs (`TrainingOutcome.history`).
    """
    after = domain_features(model, splits.train.images, target_domain.images, batch_size)
    result = {"a_distance": {"before": proxy_a_distance(*before, seed=seed),
                             "after": proxy_a_distance(*after, seed=seed)}}
    evaluation = target_domain.evaluation
    if evaluation is not None:
        result["target"] = target_metrics(model, target_domain, splits.class_names, batch_size)
    if baseline is not None and evaluation is not None:
        result["target_source_only"] = target_metrics(baseline, target_domain, splits.class_names, batch_size)
    # The plotted target images are labelled only when they are the evaluation images (transductive targets).
    transductive = evaluation is not None and evaluation.images is target_domain.images
    target_labels = evaluation.labels[: len(after[1])] if transductive else None
    plot_embedding(run_dir / "embedding.png", after[0], after[1], splits.train.labels[: len(after[0])],
                   target_labels, splits.class_names, title="(after adaptation)")
    logger.info(f"proxy A-distance source↔target: {result['a_distance']['before']:.3f} before, "
                f"{result['a_distance']['after']:.3f} after")
    if adaptation is not None:
        result["adaptation"] = _judgement(model, baseline, splits, target_domain, adaptation, history or {},
                                          batch_size, seed)
    return result


def _judgement(model, baseline, splits, target_domain, adaptation, history, batch_size, seed) -> dict:
    """The `adaptation` entry of metrics.json; logs the domain classifier's trouble and the verdict."""
    from tltf.adapt import methods
    from tltf.adapt.domain_accuracy import domain_accuracy_problem
    from tltf.adapt.selection import SelectionCriteria, dev_problem
    from tltf.adapt.verdict import adaptation_verdict, verdict_message

    method = methods.get(adaptation.method)
    judged = {"method": adaptation.method, "title": method.title, "select": method.chooses_epoch_by(adaptation)}
    if "dev_risk" in history:
        judged["selection"] = selection_report(history)
        if judged["select"] == "dev":
            judged["delivered_by"] = "dev" if "dev" in judged["selection"] else "source_val"
        problem = _dev_problem_in_training(history, judged["selection"], judged["select"])
        if problem:
            judged["dev_warning"] = problem
            logger.warning(problem)
    problem = domain_accuracy_problem(history.get("domain_accuracy", []), history.get("lambda", []))
    if problem:
        judged["domain_accuracy_warning"] = problem
        logger.warning(problem)
    if baseline is None:
        return judged
    criteria = SelectionCriteria(model, splits.train.images, target_domain.images,
                                 (splits.val.images, splits.val.labels), batch_size, seed=seed)
    criterion = "snd" if judged["select"] == "snd" else "dev"
    key = "snd" if criterion == "snd" else "dev_risk"
    (adapted, adapted_outputs), (source_only, source_only_outputs) = (
        criteria.criteria_and_target_outputs(m) for m in (model, baseline))
    # Comparing DEV risks means nothing when DEV cannot judge one of the models.
    problem = "" if criterion == "snd" else next(filter(None, (dev_problem(
        {"weight_mean": m["dev_weight_mean"], "effective_fraction": m["dev_effective_fraction"]})
        for m in (adapted, source_only))), "")
    verdict = adaptation_verdict(adapted_outputs, source_only_outputs, adapted[key], source_only[key], criterion,
                                 problem)
    judged.update(verdict, message=verdict_message(verdict))
    if verdict["verdict"] == "adapted":
        logger.info(judged["message"])
    else:
        logger.warning(judged["message"])
    return judged


def _dev_problem_in_training(history: dict, selection: dict, select: str) -> str:
    """What to say about DEV's own check: with `select: dev`, only when no epoch passed it (the epoch was then
    chosen by source validation); otherwise when it fails at the last epoch. With how many epochs it concerns."""
    from tltf.adapt.selection import dev_problem

    means, fractions = history.get("dev_weight_mean"), history.get("dev_effective_fraction")
    if not means or not fractions:
        return ""
    problems = [dev_problem({"weight_mean": m, "effective_fraction": f}) for m, f in zip(means, fractions)]
    count = sum(bool(p) for p in problems)
    if select == "dev":
        if "dev" in selection:
            return ""  # DEV chose among the epochs it could judge
        return (f"{problems[-1]} [all {len(problems)} epochs]; so the epoch was chosen by source validation, "
                "as for the source-only model")
    if not problems[-1]:
        return ""
    return f"{problems[-1]} [epoch {len(problems)}; {count} of {len(problems)} epochs]"


def selection_report(history: dict) -> dict:
    """For each way of choosing the epoch (the criteria, source validation AUC and, when the target has labels,
    the target accuracy itself), the epoch it picks and the target accuracy there (on a sample of up to 1,000
    labelled target images). DEV picks among the epochs whose importance weights pass its check
    (`dev_trusted`), and has no entry when none did."""
    rules = {"dev": ("dev_risk", np.nanargmin), "snd": ("snd", np.nanargmax), "source_val": ("val_auc", np.nanargmax),
             "target_labels": ("target_accuracy", np.nanargmax)}
    report = {}
    for name, (key, choose) in rules.items():
        values = history.get(key)
        if not values:
            continue
        if name == "dev" and "dev_trusted" in history:
            values = [v if trusted else np.nan for v, trusted in zip(values, history["dev_trusted"])]
            if all(np.isnan(values)):
                continue
        epoch = int(choose(np.asarray(values, dtype=float)))
        report[name] = {"epoch": epoch + 1, key: round(float(values[epoch]), 4)}
        if "target_accuracy" in history:
            report[name]["target_accuracy"] = round(float(history["target_accuracy"][epoch]), 4)
    return report


def proxy_a_distance(source_features: np.ndarray, target_features: np.ndarray, seed: int = 0) -> float:
    """`2·(1 − 2ε)`, ε the held-out error of a linear classifier telling the domains apart.

    0 means indistinguishable domains, 2 perfectly separable ones (Ben-David
    et al., 2007). Uses at most 2,000 features per domain, split half and half.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    source = source_features[rng.permutation(len(source_features))[:2000]]
    target = target_features[rng.permutation(len(target_features))[:2000]]
    features = np.concatenate([source, target]).astype(np.float64)
    domains = np.concatenate([np.zeros(len(source)), np.ones(len(target))])
    x_train, x_test, y_train, y_test = train_test_split(features, domains, test_size=0.5, random_state=seed,
                                                        stratify=domains)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    classifier.fit(x_train, y_train)
    error = 1.0 - classifier.score(x_test, y_test)
    return float(2.0 * (1.0 - 2.0 * min(error, 0.5)))


def plot_embedding(path, source_features, target_features, source_labels, target_labels, class_names, title=""):
    """PCA of source and target features, coloured by domain and by class, as a PNG."""
    from sklearn.decomposition import PCA

    from tltf.evaluate.plots import _pyplot

    plt = _pyplot()
    features = np.concatenate([source_features, target_features])
    points = PCA(n_components=2, random_state=0).fit_transform(features)
    count = len(source_features)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for points_part, name, marker in ((points[:count], "source", "o"), (points[count:], "target", "x")):
        axes[0].scatter(points_part[:, 0], points_part[:, 1], s=6, marker=marker, label=name, alpha=0.5)
    axes[0].set(title=f"by domain {title}".strip())
    axes[0].legend()
    labels = np.concatenate([source_labels, target_labels if target_labels is not None else
                             np.full(len(target_features), -1)])
    for class_id, name in enumerate(class_names):
        chosen = labels == class_id
        axes[1].scatter(points[chosen, 0], points[chosen, 1], s=6, label=name, alpha=0.5)
    if (labels == -1).any():
        axes[1].scatter(points[labels == -1, 0], points[labels == -1, 1], s=6, c="lightgrey", label="unlabelled")
    axes[1].set(title="by class")
    axes[1].legend(markerscale=2, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
