"""Margin losses for two classes: hinge and squared_hinge (the losses of linear SVMs).

The model gives one score o per sample; the label is y ∈ {-1, 1} (targets 0/1 are mapped to -1/1, targets
-1/1 are taken as they are), and a sample is classified right with margin when y·o >= 1. The link is σ(o),
so that predictions above 1/2 (class 1) are exactly the positive scores; these are not calibrated
probabilities (the loss never asks σ(o) to match a frequency), so probability metrics such as log_loss
mean little for these losses, while accuracy, f1 and the like are as for any classifier.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from framework.components import Array, Task
from framework.functional import constant
from framework.functional.links import logistic
from plugins.losses.base import BufferedLoss, check_shapes, first_bad_row


class MarginLoss(BufferedLoss):
    """A binary loss on one score per sample, with targets y ∈ {-1, 1}."""

    tasks: ClassVar[tuple[Task, ...]] = ("binary",)

    def link(self, outputs: Array) -> Array:
        return logistic(outputs)

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        return np.asarray(self.elements(outputs, targets)[:, 0])

    def value(self, outputs: Array, targets: Array) -> float:
        check_shapes(self, outputs, targets)
        loss = self.elements(outputs, targets)
        return float(np.mean(loss)) if loss.size else float("nan")

    def elements(self, outputs: Array, targets: Array) -> Array:
        """Each sample's loss as a new (n, 1) array."""
        raise NotImplementedError

    @staticmethod
    def _shortfall(outputs: Array, targets: Array) -> Array:
        """max(0, 1 - y·o), a new array: how far each sample falls short of margin 1."""
        short = np.multiply(outputs, targets)  # y·o
        np.subtract(constant(1.0, short.dtype), short, out=short)
        return np.asarray(np.maximum(short, constant(0.0, short.dtype), out=short))

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        """The labels as one column of y ∈ {-1, 1}, from labels 0/1 or -1/1."""
        labels = np.asarray(y, dtype=np.float64)
        labels = labels.reshape(len(labels), -1)
        if labels.shape[1] != 1:
            raise ValueError(f"{self.name}: targets must be one column of labels, got {labels.shape[1]} columns")
        zero_one = (labels == 0) | (labels == 1)
        plus_minus = (labels == -1) | (labels == 1)
        if zero_one.all():
            return np.asarray(2 * labels - 1, dtype=dtype)  # 0 -> -1, 1 -> 1
        if plus_minus.all():
            return np.asarray(labels, dtype=dtype)
        neither = ~(zero_one | plus_minus)
        if neither.any():
            row, more = first_bad_row(neither[:, 0])
            problem = f"row {row} has {labels[row, 0]:g}{more}"
        else:
            problem = f"they mix 0 (row {int(np.flatnonzero(labels == 0)[0])}) and -1 (row "
            problem += f"{int(np.flatnonzero(labels == -1)[0])})"
        raise ValueError(f"{self.name}: labels must be 0/1 or -1/1, {problem}")

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if n_classes is None or n_classes > 2:
            has = "no classes (a regression task)" if n_classes is None else f"{n_classes} classes"
            return (
                f"{self.name} is a binary loss (one score per sample, its sign the class), the data set has "
                f"{has}; help: use cross_entropy"
            )
        if n_outputs != 1:
            return (
                f"{self.name} needs exactly 1 output (the score; class 1 when it is positive), the model has "
                f"{n_outputs}; help: set the last layer's units = 1"
            )
        return None


class Hinge(MarginLoss):
    """L = mean over samples of max(0, 1 - y·o), y ∈ {-1, 1}; dL/do = -y·[y·o < 1] / n (0 at y·o = 1)."""

    name: ClassVar[str] = "hinge"

    def elements(self, outputs: Array, targets: Array) -> Array:
        return self._shortfall(outputs, targets)

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = np.multiply(outputs, targets, out=self._buffer(outputs))  # y·o
        # 1 where the margin is short (y·o < 1), else 0; at the kink y·o = 1 the subgradient 0, as relu's.
        np.less(grad, constant(1.0, grad.dtype), out=grad)
        grad *= targets  # y·[y·o < 1]
        grad *= constant(-1 / outputs.size, grad.dtype)
        return grad


class SquaredHinge(MarginLoss):
    """L = mean over samples of max(0, 1 - y·o)², y ∈ {-1, 1}; dL/do = -2y·max(0, 1 - y·o) / n."""

    name: ClassVar[str] = "squared_hinge"

    def elements(self, outputs: Array, targets: Array) -> Array:
        short = self._shortfall(outputs, targets)
        return np.square(short, out=short)

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = np.multiply(outputs, targets, out=self._buffer(outputs))  # y·o
        np.subtract(constant(1.0, grad.dtype), grad, out=grad)
        np.maximum(grad, constant(0.0, grad.dtype), out=grad)  # max(0, 1 - y·o)
        grad *= targets
        grad *= constant(-2 / outputs.size, grad.dtype)
        return grad
