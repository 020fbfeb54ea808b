"""Regression losses: mse, mae, huber, log_cosh and poisson, each a mean over the n·k output elements.

r = o - t is the residual of an output o against its target t. mse is the mean of r², mae of |r| (robust to
outliers, but its gradient does not shrink near the optimum), huber and log_cosh are quadratic near 0 and
linear far from it (huber exactly, log_cosh smoothly). poisson is the negative log-likelihood of counts
whose log-rate is the output.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import Array, Params, Task
from framework.functional import constant
from framework.functional.links import identity, rates
from plugins.losses.base import BufferedLoss, check_shapes, first_bad_row


class RegressionLoss(BufferedLoss):
    """A loss comparing each output with its target value: one target column per output."""

    # A multiclass model would need one-hot targets, which prepare_targets cannot build without the task; a
    # binary one compares its single output with the 0/1 label.
    tasks: ClassVar[tuple[Task, ...]] = ("regression", "binary")

    def link(self, outputs: Array) -> Array:
        return identity(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        targets = super().prepare_targets(y, n_outputs, dtype)
        if targets.shape[1] != n_outputs:
            raise ValueError(
                f"{self.name}: the targets have {targets.shape[1]} column(s), the model has {n_outputs} "
                f"output(s); help: set the last layer's units = {targets.shape[1]}"
            )
        return targets

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if task == "binary" and n_outputs != 1:
            return f"{self.name} on a binary task compares one output with the 0/1 label, the model has {n_outputs}"
        return None


class ElementwiseLoss(RegressionLoss):
    """The mean over all n·k elements of ℓ(o, t): `value` and `per_sample` come from `elements`."""

    def elements(self, outputs: Array, targets: Array) -> Array:
        """ℓ(o, t) for every element, a new array shaped like `outputs`."""
        raise NotImplementedError

    def value(self, outputs: Array, targets: Array) -> float:
        check_shapes(self, outputs, targets)
        loss = self.elements(outputs, targets)
        return float(np.mean(loss)) if loss.size else float("nan")

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        return np.asarray(self.elements(outputs, targets).mean(axis=1))  # each row's mean over its k outputs


class MSE(RegressionLoss):
    """L = mean over all n·k elements of (o - t)^2; dL/do = 2 (o - t) / (n·k)."""

    name: ClassVar[str] = "mse"

    def value(self, outputs: Array, targets: Array) -> float:
        check_shapes(self, outputs, targets)
        diff = np.subtract(outputs, targets)  # o - t
        # mean of (o - t)^2: vdot flattens without the ravel() call (0.3 µs of a 1.3 µs call at W1's size)
        return float(np.vdot(diff, diff)) / diff.size if diff.size else float("nan")

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        diff = np.subtract(outputs, targets)
        return np.asarray(np.square(diff, out=diff).mean(axis=1))  # each row's mean of (o - t)^2

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = np.subtract(outputs, targets, out=self._buffer(outputs))  # o - t
        grad *= constant(2 / outputs.size, grad.dtype)  # d/do of the mean of squares
        return grad


class MAE(ElementwiseLoss):
    """L = mean over all n·k elements of |o - t|; dL/do = sign(o - t) / (n·k), with sign(0) = 0."""

    name: ClassVar[str] = "mae"

    def elements(self, outputs: Array, targets: Array) -> Array:
        residual = np.subtract(outputs, targets)
        return np.abs(residual, out=residual)

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = np.subtract(outputs, targets, out=self._buffer(outputs))  # r = o - t
        np.sign(grad, out=grad)  # d|r|/dr, 0 at the kink (the subgradient PyTorch and TensorFlow take)
        grad *= constant(1 / outputs.size, grad.dtype)
        return grad


class HuberParams(Params):
    delta: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="δ: residuals up to δ count quadratically, larger ones linearly."
    )


class Huber(ElementwiseLoss):
    """L = mean over all n·k elements of r²/2 for |r| <= δ, else δ(|r| - δ/2), with r = o - t;
    dL/do = clip(r, -δ, δ) / (n·k) (Keras's and PyTorch's Huber loss)."""

    name: ClassVar[str] = "huber"
    Params: ClassVar[type[Params]] = HuberParams
    params: HuberParams

    def elements(self, outputs: Array, targets: Array) -> Array:
        size = np.abs(np.subtract(outputs, targets))  # |r|
        # With m = min(|r|, δ), m·(|r| - m/2) is r²/2 where |r| <= δ (m = |r|) and δ(|r| - δ/2) beyond
        # (m = δ): one formula for both branches that never squares a large residual.
        m = np.minimum(size, constant(self.params.delta, size.dtype))
        size -= m / 2
        size *= m
        return size

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = np.subtract(outputs, targets, out=self._buffer(outputs))  # r
        delta = constant(self.params.delta, grad.dtype)
        np.clip(grad, -delta, delta, out=grad)  # dℓ/dr: r inside [-δ, δ], ±δ outside
        grad *= constant(1 / outputs.size, grad.dtype)
        return grad


class LogCosh(ElementwiseLoss):
    """L = mean over all n·k elements of log(cosh(o - t)); dL/do = tanh(o - t) / (n·k)."""

    name: ClassVar[str] = "log_cosh"

    def elements(self, outputs: Array, targets: Array) -> Array:
        size = np.abs(np.subtract(outputs, targets))  # a = |r|; log cosh is even
        # cosh(a) = e^a (1 + e^-2a) / 2 overflows for a > 89 (float32), its log does not:
        # log cosh a = a + log1p(e^-2a) - log 2 = a + log1p(expm1(-2a) / 2). The second form keeps log 2 out
        # of the sum, which would otherwise cancel against a + log1p(e^-2a) ≈ log 2 + a²/2 for small a and
        # leave an error of 1e-16 on a value of a²/2; here the error is relative to a instead.
        tail = np.multiply(size, constant(-2.0, size.dtype))
        np.expm1(tail, out=tail)  # e^-2a - 1, in [-1, 0]: no overflow
        tail *= constant(0.5, size.dtype)
        np.log1p(tail, out=tail)  # log((1 + e^-2a) / 2), in [-log 2, 0]
        size += tail
        return size

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = np.subtract(outputs, targets, out=self._buffer(outputs))  # r
        np.tanh(grad, out=grad)  # d log cosh(r) / dr = sinh(r) / cosh(r), in [-1, 1]
        grad *= constant(1 / outputs.size, grad.dtype)
        return grad


class Poisson(ElementwiseLoss):
    """L = mean over all n·k elements of e^o - t·o, o the log-rate; dL/do = (e^o - t) / (n·k); link e^o.

    The negative log-likelihood of a count t with rate λ = e^o, without the log(t!) term that does not
    depend on o (PyTorch's `PoissonNLLLoss(log_input=True, full=False)`); it can therefore be negative. The
    targets must be >= 0. e^o is infinite for o > 88.7 in float32 (709.8 in float64): there the true value
    and gradient are larger than the largest float, and both are inf (never NaN).
    """

    name: ClassVar[str] = "poisson"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)

    def elements(self, outputs: Array, targets: Array) -> Array:
        return self._elements(rates(outputs), outputs, targets)

    @staticmethod
    def _elements(rate: Array, outputs: Array, targets: Array) -> Array:
        return np.asarray(rate - targets * outputs)  # e^o - t·o (inf - finite is inf: no NaN)

    def value_and_link(self, outputs: Array, targets: Array) -> tuple[float, Array]:
        """The value and the rates e^o from one exp (`link` is e^o)."""
        check_shapes(self, outputs, targets)
        rate = rates(outputs)
        loss = self._elements(rate, outputs, targets)
        return (float(np.mean(loss)) if loss.size else float("nan")), rate

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        grad = self._buffer(outputs)
        with np.errstate(over="ignore"):  # inf above log(max float): the true gradient is not representable
            np.exp(outputs, out=grad)  # the rate e^o
        grad -= targets  # e^o - t
        grad *= constant(1 / outputs.size, grad.dtype)
        return grad

    def link(self, outputs: Array) -> Array:
        return rates(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        targets = super().prepare_targets(y, n_outputs, dtype)
        negative = (targets < 0).any(axis=1)
        if negative.any():
            row, more = first_bad_row(np.asarray(negative))
            value = float(targets[row][targets[row] < 0][0])
            raise ValueError(
                f"poisson: targets must be counts or rates >= 0, row {row} has {value:.4g}{more}; help: "
                "standardised targets (data.standardize_target = true) are negative below the mean, turn "
                "that off for poisson, or use mse"
            )
        return targets
