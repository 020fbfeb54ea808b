"""backprop-quantile: the quantile (pinball) loss, and a `backprop quantile-table` command.

A model trained with mse predicts the mean of the target, one trained with mae its median; one trained with
the quantile loss predicts its τ-quantile: with τ = 0.9, about 90 % of the targets fall below the
predictions, which makes an upper bound of a prediction interval. With r = targets - outputs, element by
element:

    L(r) = τ·r          if r >= 0   (predicting too low costs τ per unit)
    L(r) = (τ - 1)·r    if r < 0    (predicting too high costs 1 - τ per unit)

that is L(r) = max(τ·r, (τ - 1)·r), averaged over the N = n·k elements of a batch (n samples, k outputs).
As dr/do = -1, dL/do = (1[r < 0] - τ) / N = (1[o > t] - τ) / N. At the kink r = 0 every value in [-τ, 1 - τ]
is a subgradient; we take -τ, which is what the formula gives there (1[0 < 0] = 0).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework import Array, Loss, Params, hookimpl
from framework.components import Task


class QuantileParams(Params):
    quantile: float = Field(
        0.5, gt=0, lt=1, description="The quantile τ to predict: 0.5 is the median, 0.9 an upper bound."
    )


class Quantile(Loss):
    """Quantile (pinball): mean of max(τ·r, (τ - 1)·r) with r = t - o; dL/do = (1[o > t] - τ) / N."""

    name: ClassVar[str] = "quantile"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)
    Params: ClassVar[type[Params]] = QuantileParams
    params: QuantileParams
    _grad: Array | None = None  # the gradient's buffer, made by the first batch and reused by the next ones

    def pinball(self, outputs: Array, targets: Array) -> Array:
        """max(τ·r, (τ - 1)·r) for every element, r = t - o."""
        tau = self.params.quantile
        r = targets - outputs
        return np.maximum(tau * r, (tau - 1) * r)

    def value(self, outputs: Array, targets: Array) -> float:
        return float(np.mean(self.pinball(outputs, targets)))

    def per_sample(self, outputs: Array, targets: Array) -> Array:
        return self.pinball(outputs, targets).mean(axis=1)  # each row's mean; their mean is value()

    def gradient(self, outputs: Array, targets: Array) -> Array:
        grad = self._grad
        if grad is None or grad.shape != outputs.shape or grad.dtype != outputs.dtype:
            grad = self._grad = np.empty_like(outputs)
        np.greater(outputs, targets, out=grad)  # 1[o > t], that is 1[r < 0], as 0.0 or 1.0
        grad -= self.params.quantile  # - τ
        grad *= 1 / outputs.size  # the 1/N of the mean
        return grad


@hookimpl
def register_losses() -> list[type[Loss]]:
    return [Quantile]


@hookimpl
def register_commands(app: Any) -> None:
    import typer
    from pydantic import ValidationError

    @app.command("quantile-table")
    def quantile_table(quantile: float = typer.Option(0.5, help="The quantile τ, between 0 and 1.")) -> None:
        """Print the quantile loss and its gradient for a few residuals r = target - output."""
        try:
            loss = Quantile(quantile=quantile)
        except ValidationError as error:  # one line naming the option, not a traceback
            raise typer.BadParameter(error.errors()[0]["msg"], param_hint="'--quantile'") from None
        for r in (-2.0, -1.0, 0.0, 1.0, 2.0):
            outputs, targets = np.array([[0.0]]), np.array([[r]])
            value, grad = loss.value(outputs, targets), loss.gradient(outputs, targets)[0, 0]
            typer.echo(f"r={r:+.1f}  loss={value:.4f}  grad={grad:+.4f}")
