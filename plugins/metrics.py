"""The built-in metrics: accuracy, mae and r2.

Each takes the dataset's targets (`y_true`: class labels, or regression values of shape (n,) or (n, k))
and the loss's link applied to the model's outputs (`y_pred`: probabilities, or values of shape (n, k)).
They compute in float64 and return Python floats.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from framework.components import Array, Direction, Metric, Task
from framework.markers import hookimpl


def _as_columns(name: str, y_true: Array, y_pred: Array) -> tuple[Array, Array]:
    """Both arrays as float64 (n, k), with the same shape, or a ValueError naming the metric."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    t, p = t.reshape(len(t), -1), p.reshape(len(p), -1)
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true {np.shape(y_true)} and y_pred {np.shape(y_pred)} do not match")
    if len(t) == 0:
        raise ValueError(f"{name}: no samples")
    return t, p


class Accuracy(Metric):
    """The fraction of samples whose predicted class (argmax, or p > 0.5 for one column) is the label."""

    name: ClassVar[str] = "accuracy"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        labels = np.asarray(y_true).reshape(-1)
        probs = np.asarray(y_pred)
        probs = probs.reshape(len(probs), -1)
        if len(labels) != len(probs):
            raise ValueError(f"accuracy: {len(labels)} labels but {len(probs)} predictions")
        if len(labels) == 0:
            raise ValueError("accuracy: no samples")
        # One column is P(class 1) (a sigmoid output); several are class probabilities (a softmax).
        predicted = probs[:, 0] > 0.5 if probs.shape[1] == 1 else probs.argmax(axis=1)
        return float(np.mean(predicted == labels))


class MAE(Metric):
    """Mean absolute error: the mean over samples and outputs of |y - ŷ|."""

    name: ClassVar[str] = "mae"
    direction: ClassVar[Direction] = "min"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        t, p = _as_columns(self.name, y_true, y_pred)
        return float(np.mean(np.abs(t - p)))


class R2(Metric):
    """Coefficient of determination 1 - SS_res / SS_tot per output, averaged over outputs (as sklearn).

    A constant output column scores 1 if predicted exactly and 0 otherwise (sklearn's `force_finite`); fewer
    than two samples give NaN.
    """

    name: ClassVar[str] = "r2"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        t, p = _as_columns(self.name, y_true, y_pred)
        if len(t) < 2:
            return float("nan")
        ss_res = np.sum((t - p) ** 2, axis=0)  # per output
        ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
        # Divide only where SS_tot > 0; a constant column scores 1 if fitted exactly, else 0.
        scores = np.where(ss_res == 0, 1.0, 0.0)
        np.subtract(1, ss_res / np.where(ss_tot > 0, ss_tot, 1), out=scores, where=ss_tot > 0)
        return float(np.mean(scores))


@hookimpl
def register_metrics() -> list[type[Metric]]:
    return [Accuracy, MAE, R2]
