"""Choosing an adapted model without target labels: DEV's risk estimate and soft neighbourhood density."""

from __future__ import annotations

import keras
import numpy as np

# Selection criteria: the epoch log key each is written under, and whether larger is better.
CRITERIA = {"dev": ("dev_risk", "min"), "snd": ("snd", "max")}


def importance_weights(source_features, target_features, query_features, seed: int = 0) -> np.ndarray:
    """`p_target(x) / p_source(x)` at `query_features`, from a logistic regression telling the domains apart.

    The classifier is fitted on `source_features` (0) and `target_features` (1); its odds, times
    `n_source / n_target`, estimate the density ratio (Sugiyama et al.). Probabilities are clipped to
    [0.001, 0.999] so that separable domains give large, finite weights.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.concatenate([source_features, target_features]).astype(np.float64)
    domains = np.concatenate([np.zeros(len(source_features)), np.ones(len(target_features))])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
    classifier.fit(features, domains)
    target_probability = np.clip(classifier.predict_proba(query_features.astype(np.float64))[:, 1], 1e-3, 1 - 1e-3)
    return len(source_features) / len(target_features) * target_probability / (1.0 - target_probability)


# DEV needs importance weights that average about 1 over the source (E_source[p_t/p_s] = 1) and that do not rest
# on a few images; outside these bounds its estimate says nothing about the target.
WEIGHT_MEAN_BOUNDS = (0.5, 2.0)
MIN_EFFECTIVE_FRACTION = 0.1


def weight_diagnostics(weights: np.ndarray) -> dict:
    """`weight_mean` and `effective_fraction` (Kish's effective sample size `(Σw)² / Σw²` over n) of importance
    weights: the two signs that DEV's estimate cannot be trusted."""
    weights = np.asarray(weights, np.float64)
    effective = weights.sum() ** 2 / np.maximum((weights ** 2).sum(), 1e-300)
    return {"weight_mean": float(weights.mean()), "effective_fraction": float(effective / len(weights))}


def dev_problem(diagnostics: dict) -> str:
    """Why DEV cannot judge, from `weight_diagnostics` (empty when it can)."""
    mean, fraction = diagnostics["weight_mean"], diagnostics["effective_fraction"]
    low, high = WEIGHT_MEAN_BOUNDS
    if low <= mean <= high and fraction >= MIN_EFFECTIVE_FRACTION:
        return ""
    if not low <= mean <= high:
        why = (f"the domain classifier tells source from target almost perfectly, so the source validation images' "
               f"importance weights average {mean:.3g} instead of about 1")
    else:
        why = f"the importance weights rest on {fraction:.0%} of the source validation images"
    return (f"DEV cannot judge this shift: {why}; the epoch it ranks best is not evidence about the target "
            "(select: snd does not use source images)")


def dev_risk(weights: np.ndarray, losses: np.ndarray) -> float:
    """Deep Embedded Validation (You et al., 2019): the target risk estimated from importance-weighted source
    validation losses, with the weights' mean as a control variate (lower is better).

    Args:
        weights: importance weights of the source validation examples (`importance_weights`).
        losses: the model's loss on each of them.
    """
    weighted = weights * losses
    variance = np.var(weights, ddof=1) if len(weights) > 1 else 0.0
    eta = -np.cov(weighted, weights, ddof=1)[0, 1] / variance if variance > 0 else 0.0
    return float(np.mean(weighted) + eta * np.mean(weights) - eta)


def soft_neighborhood_density(probabilities: np.ndarray, temperature: float = 0.05) -> float:
    """Saito et al.'s (2021) SND of target predictions `[N,C]`: the mean entropy of each example's softmax
    similarity to the others (higher is better: predictions that form dense neighbourhoods)."""
    normalized = probabilities / np.maximum(np.linalg.norm(probabilities, axis=1, keepdims=True), 1e-12)
    similarity = normalized @ normalized.T / temperature
    np.fill_diagonal(similarity, -np.inf)
    similarity -= similarity.max(axis=1, keepdims=True)
    neighbours = np.exp(similarity)
    neighbours /= neighbours.sum(axis=1, keepdims=True)
    return float(-np.sum(neighbours * np.log(np.maximum(neighbours, 1e-30)), axis=1).mean())


def per_example_loss(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Cross-entropy of each example: `[N]` integer labels, `[N,C]` class probabilities."""
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0))


def as_class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """`[N,C]` class probabilities from a tltf classifier's outputs (binary `[N,1]` → `[1 − p, p]`)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return np.concatenate([1.0 - outputs, outputs], axis=1) if outputs.shape[1] == 1 else outputs


class SelectionCriteria(keras.callbacks.Callback):
    """Adds unsupervised model-selection criteria for a target domain to every epoch's logs.

    After each epoch the classifier's pooled features and predictions are
    computed on a seeded sample of source training images, target images and
    the source validation images; the logs gain `dev_risk` (DEV, lower is
    better) with its importance weights' `dev_weight_mean` and
    `dev_effective_fraction` (`weight_diagnostics`) and `dev_trusted` (1 when
    they pass `dev_problem`'s check, else 0), and `snd` (soft
    neighbourhood density of the target predictions, higher is better), so a
    checkpoint callback can choose by either. When
    labelled target images are given, `target_accuracy` is added too: never
    to choose with, only to measure how well the criteria choose.

    Example:
        criteria = SelectionCriteria(model, x_source, x_target, (x_val, y_val), batch_size=64)
        dann.fit(batches, validation_data=val_ds, epochs=10,
                 callbacks=[criteria, BestModelCheckpoint("best.keras", model, monitor="dev_risk", mode="min")])

    Args:
        model: a tltf classifier (a backbone and a head; `tltf.build_model`).
        source_images: source training images (unaugmented).
        target_images: unlabelled target images.
        validation: `(images, labels)` of the source validation split.
        batch_size: inference batch size.
        target_labelled: optional `(images, labels)` of the target, for `target_accuracy`.
        limit: at most this many images of each set (the validation split is used whole).
        seed: seeds the samples and the domain classifier.
    """

    def __init__(self, model, source_images, target_images, validation, batch_size: int, target_labelled=None,
                 limit: int = 1000, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.classifier = model
        self.source = seeded_subset(source_images, limit, rng)
        self.target = seeded_subset(target_images, limit, rng)
        self.validation = validation
        self.target_labelled = None
        if target_labelled is not None:
            chosen = np.sort(rng.permutation(len(target_labelled[1]))[:limit])
            self.target_labelled = (np.asarray(target_labelled[0][chosen]), np.asarray(target_labelled[1])[chosen])
        self.batch_size, self.seed = batch_size, seed
        self._twin = None

    def criteria(self, model=None) -> dict:
        """`dev_risk`, `snd` (and `target_accuracy`) of `model` (default: the watched classifier) as it is now."""
        return self.criteria_and_target_outputs(model)[0]

    def criteria_and_target_outputs(self, model=None) -> tuple:
        """`criteria(model)` and `model`'s outputs on the sample of target images, from one pass over it."""
        model = model or self.classifier
        source_features, _ = self._features_and_outputs(model, self.source)
        target_features, target_outputs = self._features_and_outputs(model, self.target)
        val_features, val_outputs = self._features_and_outputs(model, self.validation[0])
        weights = importance_weights(source_features, target_features, val_features, self.seed)
        losses = per_example_loss(np.asarray(self.validation[1]), as_class_probabilities(val_outputs))
        diagnostics = weight_diagnostics(weights)
        result = {"dev_risk": dev_risk(weights, losses), "dev_weight_mean": diagnostics["weight_mean"],
                  "dev_effective_fraction": diagnostics["effective_fraction"],
                  "dev_trusted": 0.0 if dev_problem(diagnostics) else 1.0,
                  "snd": soft_neighborhood_density(as_class_probabilities(target_outputs))}
        if self.target_labelled is not None:
            _, outputs = self._features_and_outputs(model, self.target_labelled[0])
            predicted = as_class_probabilities(outputs).argmax(axis=1)
            result["target_accuracy"] = float((predicted == self.target_labelled[1]).mean())
        return result, target_outputs

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.criteria())

    def _features_and_outputs(self, model, images):
        from tltf.data.pipeline import images_in_batches
        from tltf.models.anatomy import backbone_of

        if self._twin is None or self._twin[0] is not model:
            twin = keras.Model(model.input, [backbone_of(model).output, model.output], name="features_and_outputs")
            self._twin = (model, twin)
        features, outputs = self._twin[1].predict(images_in_batches(images, self.batch_size), verbose=0)
        return features.astype(np.float32), outputs


def seeded_subset(images, limit: int, rng):
    """At most `limit` of `images` (an array or an `ImageStore`), drawn by `rng`, in their original order; all of
    them, without drawing, when there are no more."""
    if len(images) <= limit:
        return images
    return images[np.sort(rng.permutation(len(images))[:limit])]
