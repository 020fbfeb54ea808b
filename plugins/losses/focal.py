"""focal: the cross entropy with well-classified samples down-weighted by (1 - p)^γ (Lin et al. 2017).

Derivation of the gradients (checked against central finite differences in tests/plugins/test_losses.py).

One output (binary, logit o, p = σ(o)): with sp(x) = log(1 + e^x), -log p = sp(-o), -log(1 - p) = sp(o),
(1 - p)^γ = e^(-γ·sp(o)) and p^γ = e^(-γ·sp(-o)), so that nothing overflows, no power has a negative
exponent, and 0^0 = 1 falls out for γ = 0. For a target t ∈ [0, 1] (0/1 for the paper's labels)

    L = α₁ t·A + α₀ (1 - t)·B,   A = (1 - p)^γ (-log p),   B = p^γ (-log(1 - p)),

and since dp/do = p(1 - p):

    dA/do = -γ p (1 - p)^γ (-log p) - (1 - p)^γ (1 - p) = -(1 - p)^γ [γ p·sp(-o) + (1 - p)],
    dB/do =  γ (1 - p) p^γ (-log(1 - p)) + p^γ p        =  p^γ [γ (1 - p)·sp(o) + p].

k outputs (softmax p = softmax(o), ℓ_j = log p_j, q_j = 1 - p_j): L = -α Σ_j t_j q_j^γ ℓ_j. With
dp_j/do_m = p_j (δ_jm - p_m) and dℓ_j/do_m = δ_jm - p_m,

    d(q_j^γ ℓ_j)/do_m = (δ_jm - p_m)·g_j,   g_j = q_j^γ - γ q_j^(γ-1) p_j ℓ_j = q_j^γ (1 - γ p_j h_j),

with h_j = ℓ_j / q_j, so dL/do_m = α (p_m·Σ_j t_j g_j - t_m g_m). h_j is finite (it tends to -1 as p_j -> 1,
the limit taken where q_j = 0), so g_j needs no q^(γ-1), which is infinite at q = 0 for γ < 1. q_j comes
from ℓ_j as -expm1(ℓ_j), accurate when p_j is near 1 (1 - p_j would cancel) and consistent with ℓ_j.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import Array, Params, Task
from framework.functional import constant, row_max, row_sum
from framework.functional.links import logistic_or_probabilities
from plugins.losses.base import BufferedLoss, binary_column, check_shapes, one_hot


class FocalParams(Params):
    gamma: float = Field(
        2.0,
        ge=0,
        allow_inf_nan=False,
        description="γ: the focusing power; (1 - p)^γ down-weights confident right answers (0: cross entropy).",
    )
    alpha: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="α: with 1 output, the weight of class 1 (class 0 gets 1 - α); with one output per class, "
        "a factor on the loss (as Keras); none: no weighting.",
    )


def _softplus(x: Array) -> Array:
    return np.asarray(np.logaddexp(constant(0.0, x.dtype), x))


class Focal(BufferedLoss):
    """Focal loss on logits; one output: L = mean of -α_t (1 - p_t)^γ log p_t with p = σ(o), p_t = p for
    t = 1 and 1 - p for t = 0, α_t = α or 1 - α (1 without alpha); k outputs: L = mean of
    -α Σ_j t_j (1 - p_j)^γ log p_j with p = softmax(o). The gradients are derived in the module docstring."""

    name: ClassVar[str] = "focal"
    tasks: ClassVar[tuple[Task, ...]] = ("binary", "multiclass")
    Params: ClassVar[type[Params]] = FocalParams
    params: FocalParams

    def _alphas(self) -> tuple[float, float]:
        """(α₀, α₁): the weights of class 0 and class 1 in the one-output form."""
        alpha = self.params.alpha
        return (1.0, 1.0) if alpha is None else (1 - alpha, alpha)

    # -- the loss --------------------------------------------------------------------------------------------

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        gamma = self.params.gamma
        if outputs.shape[1] == 1:
            a, b = _softplus(outputs), _softplus(-outputs)  # sp(o) = -log(1 - p), sp(-o) = -log p
            w0, w1 = self._alphas()
            first = np.exp(-gamma * a) * b  # A = (1 - p)^γ (-log p)
            second = np.exp(-gamma * b) * a  # B = p^γ (-log(1 - p))
            return np.asarray((w1 * targets * first + w0 * (1 - targets) * second)[:, 0])
        shifted = outputs - row_max(outputs)
        log_p = shifted - np.log(row_sum(np.exp(shifted)))  # ℓ = log softmax(o)
        q = -np.expm1(log_p)  # 1 - p, in [0, 1]
        alpha = 1.0 if self.params.alpha is None else self.params.alpha
        return np.asarray(-alpha * row_sum(targets * np.power(q, gamma) * log_p)[:, 0])

    def value(self, outputs: Array, targets: Array) -> float:
        rows = self.per_sample(outputs, targets)
        return float(np.mean(rows)) if rows.size else float("nan")

    def gradient(self, outputs: Array, targets: Array) -> Array:
        check_shapes(self, outputs, targets)
        if outputs.shape[1] == 1:
            return self._binary_gradient(outputs, targets)
        return self._softmax_gradient(outputs, targets)

    def _binary_gradient(self, o: Array, t: Array) -> Array:
        dtype, gamma = o.dtype, constant(self.params.gamma, o.dtype)
        grad = self._buffer(o)
        a, b, c, d = self._scratch(o.shape, dtype, 4)
        zero = constant(0.0, dtype)
        np.logaddexp(zero, o, out=a)  # sp(o) = -log(1 - p)
        np.negative(o, out=grad)
        np.logaddexp(zero, grad, out=b)  # sp(-o) = -log p
        # c = -dA/do = (1 - p)^γ [γ p·sp(-o) + (1 - p)]
        np.negative(b, out=c)
        np.exp(c, out=c)  # p
        c *= b
        c *= gamma  # γ p·sp(-o)
        np.negative(a, out=d)
        np.exp(d, out=d)  # 1 - p
        c += d
        np.multiply(a, -gamma, out=d)
        np.exp(d, out=d)  # (1 - p)^γ
        c *= d
        # grad = dB/do = p^γ [γ (1 - p)·sp(o) + p]
        np.negative(a, out=grad)
        np.exp(grad, out=grad)  # 1 - p
        grad *= a
        grad *= gamma  # γ (1 - p)·sp(o)
        np.negative(b, out=d)
        np.exp(d, out=d)  # p
        grad += d
        np.multiply(b, -gamma, out=d)
        np.exp(d, out=d)  # p^γ
        grad *= d
        # dL/do = α₀ (1 - t)·dB/do + α₁ t·dA/do, over n
        w0, w1 = self._alphas()
        np.subtract(constant(1.0, dtype), t, out=d)
        d *= constant(w0, dtype)
        grad *= d
        np.multiply(t, constant(w1, dtype), out=d)
        c *= d
        grad -= c
        grad *= constant(1 / o.shape[0], dtype)
        return grad

    def _softmax_gradient(self, o: Array, t: Array) -> Array:
        n, k = o.shape
        dtype, gamma = o.dtype, self.params.gamma
        grad = self._buffer(o)
        log_p, q, g = self._scratch(o.shape, dtype, 3)
        (positive,) = self._scratch(o.shape, np.dtype(np.bool_), 1)
        (rows,) = self._scratch((n,), dtype, 1)
        ones = self._ones(k, dtype)
        np.subtract(o, row_max(o), out=log_p)  # s = o - max o
        np.exp(log_p, out=grad)
        np.matmul(grad, ones, out=rows)
        np.log(rows, out=rows)  # log Σ e^s
        log_p -= rows[:, None]  # ℓ = log softmax(o)
        np.exp(log_p, out=grad)  # p
        np.expm1(log_p, out=q)
        np.negative(q, out=q)  # q = 1 - p = -expm1(ℓ)
        # h = ℓ / q, and its limit -1 where q = 0 (p = 1)
        g.fill(-1.0)
        np.greater(q, constant(0.0, dtype), out=positive)
        np.divide(log_p, q, out=g, where=positive)
        g *= grad
        g *= constant(-gamma, dtype)
        g += constant(1.0, dtype)  # 1 - γ p h
        np.power(q, constant(gamma, dtype), out=q)  # q^γ (q >= 0, γ >= 0: 0^0 = 1, never 0^negative)
        g *= q  # g = q^γ (1 - γ p h)
        np.multiply(t, g, out=q)  # t ⊙ g
        np.matmul(q, ones, out=rows)  # Σ_j t_j g_j
        grad *= rows[:, None]
        grad -= q  # p·Σ_j t_j g_j - t ⊙ g
        alpha = 1.0 if self.params.alpha is None else self.params.alpha
        grad *= constant(alpha / n, dtype)
        return grad

    # -- predictions and targets -----------------------------------------------------------------------------

    def link(self, outputs: Array) -> Array:
        return logistic_or_probabilities(outputs)

    def prepare_targets(self, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
        """One column of labels in [0, 1] for one output, one-hot rows for one output per class."""
        if n_outputs == 1:
            return binary_column(self.name, y, dtype, "for more than two classes, one output per class")
        return one_hot(self.name, y, n_outputs, dtype)

    def check_outputs(self, n_outputs: int, task: Task, n_classes: int | None) -> str | None:
        if n_classes is None:
            return "focal needs class labels (a binary or multiclass dataset)"
        if (n_outputs == 1 and n_classes == 2) or n_outputs == n_classes:
            return None
        one = "1 output (the logit of class 1) or " if n_classes == 2 else ""
        return (
            f"focal needs {one}one output per class ({n_classes}), the model has {n_outputs}; "
            f"help: set the last layer's units = {1 if n_classes == 2 else n_classes}"
        )
