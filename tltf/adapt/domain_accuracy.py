"""Watching the adversarial game: a domain classifier far from chance means the features are not aligned."""

from __future__ import annotations

import keras

from tltf.log import logger

LOW, HIGH = 0.4, 0.9
# Epochs in a row out of range (with λ > 0) before it counts: one epoch can be a transient.
PATIENCE = 2


def domain_accuracy_problem(accuracies, lambdas) -> str:
    """Why the domain accuracies of an adversarial run (per epoch, with their λ) are a problem ("" when not).

    Below 0.4 the domain classifier is confidently wrong (the features fool it by flipping, not by
    aligning: the game is unstable); above 0.9 it tells the domains apart easily (nothing is aligned).
    Counted only in epochs where λ > 0, `PATIENCE` epochs in a row.
    """
    run, worst = [], None
    for epoch, (accuracy, strength) in enumerate(zip(accuracies, lambdas), start=1):
        out = strength > 0 and (accuracy < LOW or accuracy > HIGH)
        run = [*run, (epoch, accuracy)] if out else []
        if len(run) >= PATIENCE:
            worst = run
    if worst is None:
        return ""
    first, last = worst[0][0], worst[-1][0]
    values = ", ".join(f"{a:.2f}" for _, a in worst)
    kind = (f"below {LOW}: the domain classifier is confidently wrong, so the adversarial game is unstable "
            f"(try a smaller lambda.max or a larger domain_head.lr_multiplier)") if worst[-1][1] < LOW else (
        f"above {HIGH}: the domains are still told apart, so the features are not aligned "
        f"(try a larger lambda.max)")
    return f"domain accuracy {values} in epochs {first}–{last}, {kind}"


class DomainAccuracyWatch(keras.callbacks.Callback):
    """Warns in the log when an adversarial run's domain accuracy stays out of [0.4, 0.9] while λ > 0.

    Reads `domain_accuracy` and `lambda` from each epoch's logs (`DomainAdversarialModel` and a
    `GradientReversalSchedule` write them: put this callback after the schedule); warns once per stretch out
    of range.

    Example:
        dann.fit(batches, epochs=10, callbacks=[schedule, tltf.adapt.DomainAccuracyWatch()])
    """

    def __init__(self):
        super().__init__()
        self.accuracies, self.lambdas, self.streak = [], [], 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "domain_accuracy" not in logs:
            return
        accuracy, strength = float(logs["domain_accuracy"]), float(logs.get("lambda", 1.0))
        self.accuracies.append(accuracy)
        self.lambdas.append(strength)
        self.streak = self.streak + 1 if strength > 0 and not LOW <= accuracy <= HIGH else 0
        if self.streak == PATIENCE:
            logger.warning(domain_accuracy_problem(self.accuracies, self.lambdas))
