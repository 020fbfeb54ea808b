"""kl_divergence: the Kullback-Leibler divergence of the model's softmax from target distributions.

Which tasks: regression, binary and multiclass.
- A regression dataset with k target columns is how distributions reach a loss (soft labels, vote shares,
  compositions: an .npz file's `y` of shape (n, k)); `prepare_targets` checks that every row is one (numbers
  >= 0 summing to 1) and names the first row that is not. The regression metrics then compare the predicted
  distribution softmax(o) with the target one.
- A classification dataset gives labels, which become one-hot rows; KL(one-hot ‖ softmax) is then exactly
  cross_entropy (a one-hot row has no entropy), kept here so that hard and soft labels train alike.
The model needs one output per component of the distribution, at least 2 (a softmax over one output is 1).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from framework.components import Array, Task
from framework.functional import constant, softmax
from framework.functional.links import probabilities
from plugins.losses.base import BufferedLoss, check_shapes, first_bad_row, one_hot
from plugins.losses.classification import softmax_cross_entropy

SUM_TOLERANCE = 1e-5
"""How far from 1 a target row may sum: rounding of stored probabilities, not a missing component."""


def negative_entropy(targets: Array) -> Array:
    """Σ_j t_j log t_j of each row (n,), with 0·log 0 = 0 (the limit), never computing log 0."""
    logs = np.zeros_like(targets)
    np.log(targets, out=logs, where=targets > 0)
    logs *= targets
    return np.asarray(logs.sum(axis=1))


class KLDivergence(BufferedLoss):
    """L = mean over samples of Σ_j t_j (log t_j - log softmax(o)_j), with 0·log 0 = 0, on logits o;
    dL/do = (softmax(o)·Σ_j t_j - t) / n (Σ_j t_j = 1 for a distribution)."""

    name: ClassVar[str] = "kl_divergence"
    tasks: ClassVar[tuple[Task, ...]] = ("regression", "binary", "multiclass")

    def _parts(self, outputs: Array, targets: Array, per_sample: bool) -> tuple[float, Array, Array, Array | None]:
        # KL = Σ t log t - Σ t log softmax(o): the entropy term plus the cross entropy (the targets' mass).
        check_shapes(self, outputs, targets)
        entropy = negative_entropy(targets)
        value, exp_shifted, sums, rows = softmax_cross_entropy(outputs, targets, per_sample)
        mean_entropy = float(np.mean(entropy)) if len(entropy) else 0.0
        return value + mean_entropy, exp_shifted, sums, (None if rows is None else rows + entropy)

    def value(self, outputs: Array, targets: Array) -> float:
        return self._parts(outputs, targets, False)[0]

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        rows = self._parts(outputs, targets, True)[3]
        assert rows is not None
        return rows

    def value_and_link(self, outputs: Array, targets: Array) -> tuple[float, Array]:
        """The value and softmax(o) from one softmax, the same numbers as the two calls."""
        value, exp_shifted, sums, _ = self._parts(outputs, targets, False)
        exp_shifted /= sums  # softmax(o), as `softmax` computes it
        return value, exp_shifted

    def value_link_and_per_sample(self, outputs: Array, targets: Array) -> tuple[float, Array, Array]:
        value, exp_shifted, sums, rows = self._parts(outputs, targets, True)
        exp_shifted /= sums
        assert rows is not None
        return value, exp_shifted, rows

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = softmax(outputs, out=self._buffer(outputs))  # softmax(o), the fused link
        n, k = grad.shape
        (mass,) = self._scratch((n,), grad.dtype, 1)
        np.matmul(targets, self._ones(k, grad.dtype), out=mass)  # Σ_j t_j, 1 up to rounding
        grad *= mass[:, None]
        grad -= targets  # softmax(o)·Σ_j t_j - t
        grad *= constant(1 / n, grad.dtype)
        return grad

    def link(self, outputs: Array) -> Array:
        return probabilities(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        """One-hot rows from class labels (shape (n,)), or distribution rows (n, n_outputs) checked as such."""
        values = np.asarray(y)
        if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
            return one_hot(self.name, values, n_outputs, dtype)
        targets = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
        if targets.shape[1] != n_outputs:
            raise ValueError(
                f"kl_divergence: the targets have {targets.shape[1]} columns, the model has {n_outputs} "
                f"outputs; help: set the last layer's units = {targets.shape[1]}"
            )
        what = "kl_divergence: targets must be distributions (rows of numbers >= 0 that sum to 1)"
        negative = (targets < 0).any(axis=1)
        if negative.any():
            row, more = first_bad_row(np.asarray(negative))
            value = float(targets[row][targets[row] < 0][0])
            raise ValueError(
                f"{what}, row {row} has {value:.4g}{more}; help: standardised targets "
                "(data.standardize_target = true) are not distributions, turn that off"
            )
        sums = targets.sum(axis=1)
        off = ~(np.abs(sums - 1) <= SUM_TOLERANCE)  # NaN included
        if off.any():
            row, more = first_bad_row(np.asarray(off))
            raise ValueError(f"{what}, row {row} sums to {sums[row]:.6g}{more}; help: divide each row by its sum")
        return np.asarray(targets, dtype=dtype)

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if n_outputs < 2:
            return (
                f"kl_divergence compares distributions over the outputs (a softmax), it needs at least 2, the "
                f"model has {n_outputs}; help: one unit per component of the distribution"
            )
        if n_classes is not None and n_outputs != n_classes:
            return (
                f"kl_divergence needs one output per class ({n_classes}), the model has {n_outputs}; "
                f"help: set the last layer's units = {n_classes}"
            )
        return None
