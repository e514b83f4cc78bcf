"""Calibration: when a model says 0.9, is it right 9 times in 10?

Pure functions of labels and scores (the `[N]` positive-class probability of
a binary model, `[N,C]` softmax probabilities otherwise): the expected
calibration error over equal-width confidence bins, the bins a reliability
diagram draws, and the two standard post-hoc fixes fitted by maximum
likelihood on validation data: temperature scaling (Guo et al., 2017) and,
for binary models, Platt scaling (Platt, 1999). Both act on the logits, so
`tltf.models.fold_calibration` can fold them into the output layer exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ECE_BINS = 15
METHODS = ("temperature", "platt")

# float32 probabilities cannot be closer to 0 or 1 than this: logits beyond ±16.6 are the same score.
_FLOAT32_TAIL = float(np.finfo(np.float32).epsneg)


def top_label(scores) -> tuple[np.ndarray, np.ndarray]:
    """`(predicted class ids, confidence)`: the decided class and the probability the model gave it.

    Binary scores decide at 0.5 (the confidence of "negative" is `1 − p`); multiclass by argmax.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim == 1 or scores.shape[-1] == 1:
        positive = scores.reshape(-1)
        predicted = (positive >= 0.5).astype(np.int64)
        return predicted, np.where(predicted == 1, positive, 1.0 - positive)
    return scores.argmax(axis=1), scores.max(axis=1)


def reliability_bins(labels, scores, bins: int = ECE_BINS) -> dict:
    """Per equal-width confidence bin over [0, 1]: the count, the mean confidence and the accuracy.

    Args:
        labels: int class ids `[N]`.
        scores: `[N]` binary or `[N,C]` multiclass probabilities.
        bins: number of bins.

    Returns:
        `{"edges": [bins+1], "count": [bins], "confidence": [bins], "accuracy": [bins]}`; an empty bin's
        confidence and accuracy are NaN.
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    predicted, confidence = top_label(scores)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin b holds confidences in (edges[b], edges[b+1]]; a confidence of exactly 0 goes in the first bin.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    correct = np.bincount(which, weights=(predicted == labels).astype(np.float64), minlength=bins)
    summed = np.bincount(which, weights=confidence, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"edges": edges, "count": count, "confidence": summed / count, "accuracy": correct / count}


def expected_calibration_error(labels, scores, bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean of |accuracy − mean confidence| over equal-width confidence bins.

    0 for a perfectly calibrated model; NaN when a score is not finite (a diverged model).

    Example:
        expected_calibration_error([1, 0, 1, 1], [0.9, 0.2, 0.6, 0.8])   # top-label ECE, 15 bins

    Args:
        labels: int class ids `[N]`.
        scores: `[N]` binary (positive-class probability) or `[N,C]` multiclass probabilities.
        bins: number of equal-width bins.
    """
    if not np.isfinite(np.asarray(scores, np.float64)).all():
        return float("nan")
    table = reliability_bins(labels, scores, bins)
    filled = table["count"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    return float((gaps * table["count"][filled]).sum() / table["count"].sum())


def logits_of(scores) -> np.ndarray:
    """The logits behind probabilities (binary: `log p − log(1 − p)`; multiclass: `log p`, which softmax
    maps back to `p`), with probabilities kept inside float32's resolution so a saturated score stays finite."""
    scores = np.clip(np.asarray(scores, np.float64), _FLOAT32_TAIL / 2, 1.0 - _FLOAT32_TAIL / 2)
    if scores.ndim == 1 or scores.shape[-1] == 1:
        scores = scores.reshape(-1)
        return np.log(scores) - np.log1p(-scores)
    return np.log(scores)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A post-hoc calibration: calibrated logits are `scale · logits + shift`.

    Temperature scaling has `scale = 1 / T` and no shift (binary or multiclass); Platt scaling fits both
    (binary only). A positive scale keeps every binary ranking, so the AUC does not move; a multiclass
    temperature keeps every argmax, so the accuracy does not move.

    Example:
        calibration = fit_calibration(val_labels, val_scores, "temperature")
        calibrated_test = calibration.apply(test_scores)

    Args:
        method: `"temperature"` or `"platt"`.
        scale: multiplies the logits.
        shift: added to the binary logit (Platt's intercept; 0 for temperature).
    """

    method: str
    scale: float
    shift: float = 0.0

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    def apply(self, scores) -> np.ndarray:
        """The calibrated probabilities of `scores` (same shape convention)."""
        scores = np.asarray(scores, np.float64)
        logits = self.scale * logits_of(scores)
        if logits.ndim == 1:
            return _sigmoid(logits + self.shift)
        return _softmax(logits)

    def to_dict(self) -> dict:
        fitted = {"method": self.method, "temperature": self.temperature}
        if self.method == "platt":
            fitted = {"method": self.method, "scale": self.scale, "shift": self.shift}
        return fitted


def _negative_log_likelihood(labels, logits, scale, shift=0.0) -> float:
    z = scale * logits
    if z.ndim == 1:
        z = z + shift
        # −[y log σ(z) + (1−y) log(1−σ(z))] = softplus(z) − y·z
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))


def fit_temperature(labels, scores) -> Calibration:
    """The temperature that minimises the negative log-likelihood of `labels` (bounded to [0.01, 100])."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, np.int64).reshape(-1)
    logits = logits_of(scores)
    found = minimize_scalar(lambda log_t: _negative_log_likelihood(labels, logits, np.exp(-log_t)),
                            bounds=(np.log(0.01), np.log(100.0)), method="bounded", options={"xatol": 1e-6})
    return Calibration("temperature", float(np.exp(-found.x)))


def fit_platt(labels, scores) -> Calibration:
    """Platt scaling of a binary model: the logistic regression of `labels` on the model's logit."""
    from scipy.optimize import minimize

    labels = np.asarray(labels, np.float64).reshape(-1)
    logits = logits_of(scores)
    if logits.ndim != 1:
        raise ValueError("Platt scaling is for binary scores; use temperature scaling for several classes")

    def loss_and_gradient(params):
        scale, shift = params
        residual = _sigmoid(scale * logits + shift) - labels
        return (_negative_log_likelihood(labels, logits, scale, shift),
                np.array([np.mean(residual * logits), np.mean(residual)]))

    found = minimize(loss_and_gradient, np.array([1.0, 0.0]), jac=True, method="BFGS")
    return Calibration("platt", float(found.x[0]), float(found.x[1]))


def fit_calibration(labels, scores, method: str = "temperature") -> Calibration:
    """`fit_temperature` or `fit_platt` by name.

    Raises:
        ValueError: an unknown method; Platt on multiclass scores; a fit whose scale is not positive (the
            model ranks the validation images backwards, and a calibration would reverse its decisions).
    """
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    calibration = fit_temperature(labels, scores) if method == "temperature" else fit_platt(labels, scores)
    if not calibration.scale > 0:
        raise ValueError(f"{method} scaling fitted a scale of {calibration.scale:.3g}: the model ranks the "
                         "validation images backwards, so no calibration is applied")
    return calibration

