"""Regression metrics: mae, rmse, mape, r2 and explained variance.

`y_true` holds the dataset's targets, shape (n,) or (n, k); `y_pred` the model's predictions in the targets'
own units, shape (n, k). Scores of several outputs are averaged over the outputs (scikit-learn's
`multioutput="uniform_average"`). Each is a sum (or two) over the rows, computed in float64 a chunk of rows at
a time (`CHUNK_ROWS`), so that a metric of a huge epoch holds no float64 copy of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from framework.components import Array, Direction, Metric, Task

CHUNK_ROWS = 1 << 16
"""Rows converted to float64 at a time. A 25-million-row epoch (a memory-mapped file) then holds a few MB of
temporaries, not four float64 copies of its targets and predictions (800 MB each)."""


def _as_columns(name: str, y_true: Array, y_pred: Array) -> tuple[Array, Array]:
    """Both arrays as (n, k) views with the same shape, not yet converted, or a ValueError naming the metric."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    t, p = t.reshape(len(t), -1), p.reshape(len(p), -1)
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true {np.shape(y_true)} and y_pred {np.shape(y_pred)} do not match")
    if len(t) == 0:
        raise ValueError(f"{name}: no samples")
    return t, p


def _column_sums(term: Callable[[Array, Array], Array], t: Array, p: Array) -> Array:
    """Σ over the rows of term(t, p) per output, in float64, CHUNK_ROWS rows at a time (see CHUNK_ROWS)."""
    total = np.zeros(t.shape[1])
    for start in range(0, len(t), CHUNK_ROWS):
        chunk = slice(start, start + CHUNK_ROWS)
        total += np.sum(term(t[chunk].astype(np.float64), p[chunk].astype(np.float64)), axis=0)
    return total


def _means(term: Callable[[Array, Array], Array], t: Array, p: Array) -> Array:
    """The mean over the rows of term(t, p) per output (float64, in chunks)."""
    return _column_sums(term, t, p) / len(t)


def _one_minus_ratio(numerator: Array, denominator: Array) -> Array:
    """1 - numerator / denominator per output; where the denominator is 0 (a constant target column), 1 if
    the numerator is 0 too (fitted exactly), else 0 (scikit-learn's `force_finite`)."""
    scores = np.where(numerator == 0, 1.0, 0.0)
    np.subtract(1, numerator / np.where(denominator > 0, denominator, 1), out=scores, where=denominator > 0)
    return scores


class MAE(Metric):
    """Mean absolute error: the mean over samples and outputs of |y - ŷ|."""

    name: ClassVar[str] = "mae"
    direction: ClassVar[Direction] = "min"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        t, p = _as_columns(self.name, y_true, y_pred)
        return float(np.mean(_means(lambda t, p: np.abs(t - p), t, p)))


class RMSE(Metric):
    """Root mean squared error √(mean of (y - ŷ)²) per output, averaged over outputs (as scikit-learn)."""

    name: ClassVar[str] = "rmse"
    direction: ClassVar[Direction] = "min"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        t, p = _as_columns(self.name, y_true, y_pred)
        return float(np.mean(np.sqrt(_means(lambda t, p: (t - p) ** 2, t, p))))


MAPE_EPSILON = 1e-7
"""The smallest |y| that mape divides by (Keras's backend epsilon)."""


class MAPE(Metric):
    """Mean absolute percentage error 100 · mean |y - ŷ| / max(|y|, ε), over samples and outputs (ε = 1e-7).

    As Keras's `mean_absolute_percentage_error`. A target of 0 is divided by ε instead, so any error on it
    counts as an enormous percentage (an error of 0.01 on a zero target adds 10⁷ % to its term): mape suits
    targets that stay away from zero; use mae or rmse for targets that cross it.
    """

    name: ClassVar[str] = "mape"
    direction: ClassVar[Direction] = "min"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        t, p = _as_columns(self.name, y_true, y_pred)
        percent = _means(lambda t, p: np.abs(t - p) / np.maximum(np.abs(t), MAPE_EPSILON), t, p)
        return float(100.0 * np.mean(percent))


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
        ss_res = _column_sums(lambda t, p: (t - p) ** 2, t, p)  # per output
        mean = _means(lambda t, p: t, t, p)
        ss_tot = _column_sums(lambda t, p: (t - mean) ** 2, t, p)
        return float(np.mean(_one_minus_ratio(ss_res, ss_tot)))


class ExplainedVariance(Metric):
    """Explained variance 1 - Var(y - ŷ) / Var(y) per output, averaged over outputs (as scikit-learn).

    Unlike r2 it ignores a constant offset of the predictions (Var(y - ŷ) does not see the mean error), so
    it equals r2 exactly when the residuals have mean zero. A constant target column scores 1 if the
    residuals are constant too and 0 otherwise (sklearn's `force_finite`); fewer than two samples give NaN
    (one value has no variance; sklearn would say 1.0), as r2 does.
    """

    name: ClassVar[str] = "explained_variance"
    direction: ClassVar[Direction] = "max"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def __call__(self, y_true: Array, y_pred: Array) -> float:
        t, p = _as_columns(self.name, y_true, y_pred)
        if len(t) < 2:
            return float("nan")
        mean_residual, mean = _means(lambda t, p: t - p, t, p), _means(lambda t, p: t, t, p)
        residual_variance = _means(lambda t, p: (t - p - mean_residual) ** 2, t, p)  # per output, both 1/n
        target_variance = _means(lambda t, p: (t - mean) ** 2, t, p)
        return float(np.mean(_one_minus_ratio(residual_variance, target_variance)))


REGRESSION: list[type[Metric]] = [MAE, RMSE, MAPE, R2, ExplainedVariance]
