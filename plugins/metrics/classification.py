"""Classification metrics of predicted classes: accuracy, balanced accuracy, macro precision/recall/F1, log loss.

`y_true` holds integer class labels (shape (n,), or (n, 1) floats); `y_pred` the loss's link: one column of
P(class 1) (a sigmoid output) or one column per class (a softmax). The predicted class is the argmax of a
row, or p > 0.5 for one column.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from framework.components import Array, Direction, Metric, Task

_HALF = {np.dtype(t): np.array(0.5, dtype=t) for t in (np.float32, np.float64)}


def labels_and_probabilities(name: str, y_true: Array, y_pred: Array) -> tuple[Array, Array]:
    """Integer labels (n,) and float64 probabilities (n, k), or a ValueError naming the metric."""
    labels = np.asarray(y_true).reshape(-1).astype(np.int64)
    probs = np.asarray(y_pred, dtype=np.float64)
    probs = probs.reshape(len(probs), -1)
    if len(labels) != len(probs):
        raise ValueError(f"{name}: {len(labels)} labels but {len(probs)} predictions")
    if len(labels) == 0:
        raise ValueError(f"{name}: no samples")
    if labels.min() < 0:
        raise ValueError(f"{name}: class labels must be 0, 1, ...; got {labels.min()}")
    return labels, probs


def _labels_and_predictions(name: str, y_true: Array, y_pred: Array) -> tuple[Array, Array, int]:
    """Integer labels, predicted classes (argmax, or p > 0.5 for one column) and the number of classes."""
    labels, probs = labels_and_probabilities(name, y_true, y_pred)
    if probs.shape[1] == 1:
        return labels, (probs[:, 0] > 0.5).astype(np.int64), 2
    return labels, probs.argmax(axis=1), probs.shape[1]


def _per_class_counts(name: str, y_true: Array, y_pred: Array) -> tuple[Array, Array, Array, Array]:
    """True positives, predicted and actual counts per class, and which classes occur (in either)."""
    labels, predicted, n_classes = _labels_and_predictions(name, y_true, y_pred)
    n_classes = max(n_classes, int(labels.max()) + 1)
    tp = np.bincount(labels[labels == predicted], minlength=n_classes).astype(np.float64)
    predicted_count = np.bincount(predicted, minlength=n_classes).astype(np.float64)
    actual_count = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = (predicted_count + actual_count) > 0
    return tp, predicted_count, actual_count, present


def _ratio(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


class Accuracy(Metric):
    """The fraction of samples whose predicted class (argmax, or p > 0.5 for one column) is the label."""

    name: ClassVar[str] = "accuracy"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        # The trainer calls this once per epoch; on a tiny model (W1: 4 samples) its fixed cost is a visible
        # part of the epoch, hence no reshape of an array that is already 2-D and a threshold in the
        # predictions' dtype (a Python float operand costs 0.3 µs more per ufunc call; same comparison).
        labels = np.asarray(y_true).reshape(-1)
        probs = np.asarray(y_pred)
        if probs.ndim != 2:
            probs = probs.reshape(len(probs), -1)
        n = len(labels)
        if n != len(probs):
            raise ValueError(f"accuracy: {n} labels but {len(probs)} predictions")
        if n == 0:
            raise ValueError("accuracy: no samples")
        # One column is P(class 1) (a sigmoid output); several are class probabilities (a softmax).
        if probs.shape[1] == 1:
            predicted = np.greater(probs[:, 0], _HALF.get(probs.dtype, 0.5))
        else:
            predicted = probs.argmax(axis=1)
        return int(np.count_nonzero(predicted == labels)) / n  # cheaper than np.mean


class BalancedAccuracy(Metric):
    """Balanced accuracy: the mean over the classes present in y_true of their recall TP / (TP + FN).

    As scikit-learn's `balanced_accuracy_score`: a class that never occurs as a label is left out (it has no
    recall), even if it is predicted. Unlike accuracy, a model that always predicts the majority class scores
    1/(number of classes), however unbalanced the data.
    """

    name: ClassVar[str] = "balanced_accuracy"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        tp, _, actual, _ = _per_class_counts(self.name, y_true, y_pred)
        present = actual > 0
        return float(np.mean(tp[present] / actual[present]))


class Precision(Metric):
    """Macro precision: the mean over classes of TP / (TP + FP), over the classes that are labels or predictions.

    A class never predicted scores 0 (scikit-learn's `zero_division=0`); binary tasks average both classes.
    """

    name: ClassVar[str] = "precision"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        tp, predicted, _, present = _per_class_counts(self.name, y_true, y_pred)
        return float(np.mean(_ratio(tp, predicted)[present]))


class Recall(Metric):
    """Macro recall: the mean over classes of TP / (TP + FN), over the classes that are labels or predictions."""

    name: ClassVar[str] = "recall"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        tp, _, actual, present = _per_class_counts(self.name, y_true, y_pred)
        return float(np.mean(_ratio(tp, actual)[present]))


class F1(Metric):
    """Macro F1: the mean over classes of 2·TP / (2·TP + FP + FN), the harmonic mean of precision and recall."""

    name: ClassVar[str] = "f1"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        tp, predicted, actual, present = _per_class_counts(self.name, y_true, y_pred)
        return float(np.mean(_ratio(2 * tp, predicted + actual)[present]))


class LogLoss(Metric):
    """Log loss: the mean over samples of -log p(true class), probabilities clipped to [ε, 1-ε] (ε = 1e-15)."""

    name: ClassVar[str] = "log_loss"
    direction: ClassVar[Direction] = "min"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        labels, probs = labels_and_probabilities(self.name, y_true, y_pred)
        if probs.shape[1] == 1:  # P(class 1): the probability of the true class is p or 1 - p
            p_true = np.where(labels == 1, probs[:, 0], 1 - probs[:, 0])
        else:
            if labels.max() >= probs.shape[1]:
                raise ValueError(f"{self.name}: labels outside 0..{probs.shape[1] - 1}")
            p_true = probs[np.arange(len(labels)), labels]
        eps = 1e-15
        return float(-np.mean(np.log(np.clip(p_true, eps, 1 - eps))))


CLASSIFICATION: list[type[Metric]] = [Accuracy, BalancedAccuracy, Precision, Recall, F1, LogLoss]
