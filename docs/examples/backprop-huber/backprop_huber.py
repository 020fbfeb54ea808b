"""backprop-huber: the Huber loss, and a `backprop huber-table` command.

With r = outputs - targets, element by element:

    L(r) = r^2 / 2                    if |r| <= delta
    L(r) = delta * (|r| - delta / 2)  otherwise

averaged over all elements: quadratic near zero like mse, linear in the tails, so a few outliers cannot
dominate the gradient. dL/do = clip(r, -delta, delta) / N.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework import Array, Loss, Params, hookimpl
from framework.components import Task


class HuberParams(Params):
    delta: float = Field(1.0, gt=0, description="Where the loss turns from quadratic to linear.")


class Huber(Loss):
    """Huber: mean of r^2/2 for |r| <= delta, else delta (|r| - delta/2); dL/do = clip(r, -delta, delta) / N."""

    name: ClassVar[str] = "huber"
    tasks: ClassVar[tuple[Task, ...]] = ("regression",)
    Params: ClassVar[type[Params]] = HuberParams
    params: HuberParams

    def value(self, outputs: Array, targets: Array) -> float:
        delta = self.params.delta
        r = np.abs(outputs - targets)  # |r|
        per_element = np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta))
        return float(np.mean(per_element))

    def gradient(self, outputs: Array, targets: Array) -> Array:
        delta = self.params.delta
        grad = np.clip(outputs - targets, -delta, delta)  # dL/dr, element by element
        grad *= 1 / outputs.size  # the 1/N of the mean
        return grad


@hookimpl
def register_losses() -> list[type[Loss]]:
    return [Huber]


@hookimpl
def register_commands(app: Any) -> None:
    import typer

    @app.command("huber-table")
    def huber_table(delta: float = typer.Option(1.0, help="The loss's delta.")) -> None:
        """Print the Huber loss and its gradient for a few residuals."""
        loss = Huber(delta=delta)
        for r in (-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0):
            outputs, targets = np.array([[r]]), np.array([[0.0]])
            value, grad = loss.value(outputs, targets), loss.gradient(outputs, targets)[0, 0]
            typer.echo(f"r={r:+.1f}  loss={value:.4f}  grad={grad:+.4f}")
