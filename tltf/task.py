"""The task: binary or multiclass classification, decided once.

Everything that depends on "binary or multiclass?" asks a `Task`: the output
layer, how labels are encoded, the loss, the training metrics, how
probabilities become scores and decisions, and the class names.
"""

from __future__ import annotations

import numpy as np


class Task:
    """Image classification over `class_names`; two classes make a binary task.

    A binary task has one sigmoid output, the probability of the second class
    (`class_names[1]`), and decides at a threshold; a multiclass task has a
    softmax over the classes and decides by argmax.

    Example:
        task = Task(["normal", "pneumonia"])
        model.compile(optimizer, loss=task.loss(), metrics=task.metrics())
        y = task.encode(labels)                      # float [N,1] for binary, one-hot [N,C] otherwise
        ids = task.decide(task.scores(model.predict(images)), threshold=0.4)

    Args:
        class_names: names for label ids 0..C-1, at least two.
    """

    def __init__(self, class_names):
        self.class_names = [str(name) for name in class_names]
        if len(self.class_names) < 2:
            raise ValueError(f"a task needs at least two classes, got {self.class_names}")

    @classmethod
    def with_classes(cls, num_classes: int) -> "Task":
        """A task with default names `class_0` … `class_{C-1}`."""
        return cls([f"class_{i}" for i in range(num_classes)])

    @classmethod
    def of_model(cls, model, class_names=None) -> "Task":
        """The task a classifier's output shape implies (one unit: binary)."""
        width = int(model.output.shape[-1])
        return cls(class_names) if class_names is not None else cls.with_classes(2 if width == 1 else width)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    @property
    def positive_class(self) -> str:
        """Binary only: the class whose probability the model outputs."""
        return self.class_names[1]

    def output_layer(self):
        """The head's last layer, float32 so the loss sees full-precision probabilities under mixed precision."""
        import keras

        if self.binary:
            return keras.layers.Dense(1, activation="sigmoid", name="logit", dtype="float32")
        return keras.layers.Dense(self.num_classes, activation="softmax", name="logits", dtype="float32")

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """Integer class ids `[N]` → float targets: `[N,1]` for binary, one-hot `[N,C]` for multiclass."""
        labels = np.asarray(labels)
        if self.binary:
            return labels.astype(np.float32).reshape(-1, 1)
        return np.eye(self.num_classes, dtype=np.float32)[labels]

    def loss(self):
        import keras

        return keras.losses.BinaryCrossentropy() if self.binary else keras.losses.CategoricalCrossentropy()

    def auc(self):
        import keras

        if self.binary:
            return keras.metrics.AUC(name="auc")
        return keras.metrics.AUC(name="auc", multi_label=True, num_labels=self.num_classes)

    def metrics(self) -> list:
        """AUC (what checkpoints are chosen by) and accuracy at 0.5 / argmax."""
        import keras

        accuracy = (keras.metrics.BinaryAccuracy(name="accuracy") if self.binary
                    else keras.metrics.CategoricalAccuracy(name="accuracy"))
        return [self.auc(), accuracy]

    def scores(self, probabilities) -> np.ndarray:
        """The model's output as scores: `[N]` positive-class probabilities for binary, `[N,C]` otherwise."""
        probabilities = np.asarray(probabilities)
        return probabilities.reshape(-1) if self.binary else probabilities

    def decide(self, scores, threshold: float = 0.5) -> np.ndarray:
        """Class ids: binary `score >= threshold`; multiclass argmax (the threshold is ignored)."""
        scores = np.asarray(scores)
        if self.binary:
            return (scores.reshape(-1) >= threshold).astype(np.int64)
        return scores.argmax(axis=-1)

    def __eq__(self, other) -> bool:
        return isinstance(other, Task) and other.class_names == self.class_names

    def __repr__(self) -> str:
        return f"Task({self.class_names!r})"
