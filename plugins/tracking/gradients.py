"""Gradient flow: per layer and epoch, the weight norm, the gradient norm and the update-to-weight ratio.

For every layer with parameters (named `layer_<i>.<type>`, as `layer_0.dense`), after each epoch:

    weight_norm/<layer>   ‖w‖₂ over all of the layer's parameters at the end of the epoch
    grad_norm/<layer>     ‖g‖₂ of the gradient of the epoch's last batch (what the optimiser last stepped with)
    update_ratio/<layer>  ‖w_end − w_start‖₂ / ‖w_start‖₂, how far the epoch moved the layer, relatively

A gradient norm shrinking layer after layer towards the input is a vanishing gradient, one growing is an
exploding one; an update ratio far below 1e-3 says a layer barely learns, far above 1e-1 that it is unstable.
The names put each family in its own section of MLflow's charts (the part before "/").

Cost: a copy of the parameters and a few norms per layer per epoch, nothing per batch (about 1 % of a W2
epoch, benchmarks/bench_gradients.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from framework import Model
    from framework.components import Array

MAX_LAYERS = 48
"""Above this many layers with parameters the statistics are not logged (a wall of charts, and a cost)."""
FAMILIES = ("grad_norm", "weight_norm", "update_ratio")


class GradientStats:
    """Keeps the parameters at the end of the previous epoch; `epoch_points()` gives this epoch's values."""

    def __init__(self, model: Model) -> None:
        self.names: list[str] = []
        self._params: list[list[Array]] = []
        self._grads: list[list[Array]] = []
        for i, layer in enumerate(model.layers):
            params = layer.parameters()
            if params:
                self.names.append(f"layer_{i}.{layer.name}")
                self._params.append(params)
                self._grads.append(layer.gradients())
        self._previous = [[p.astype(np.float64) for p in params] for params in self._params]
        self.history: dict[str, list[float]] = {}

    def epoch_points(self) -> dict[str, float]:
        """The three values of every layer for the epoch that just ended, keyed by metric name."""
        values: dict[str, float] = {}
        for name, params, grads, previous in zip(self.names, self._params, self._grads, self._previous, strict=True):
            weight = _norm(params)
            start = _norm(previous)
            moved = math.sqrt(sum(float(np.sum((p - q) ** 2)) for p, q in zip(params, previous, strict=True)))
            values[f"weight_norm/{name}"] = weight
            values[f"grad_norm/{name}"] = _norm(grads)
            values[f"update_ratio/{name}"] = moved / start if start > 0 else math.nan
            for p, q in zip(params, previous, strict=True):
                np.copyto(q, p)  # the start of the next epoch
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)
        return values


def _norm(arrays: list[Any]) -> float:
    return math.sqrt(sum(float(np.vdot(a, a)) for a in arrays))


def gradient_flow_png(stats: GradientStats, epochs: list[int], path: Any) -> Any:
    """`diagnostics/gradient_flow.png`: each family against the epochs, one line per layer, on log axes."""
    if not epochs or not stats.names:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from framework.diagnostics import TITLE

    titles = {
        "grad_norm": "gradient norm ‖g‖ (last batch)",
        "weight_norm": "weight norm ‖w‖",
        "update_ratio": "update ratio ‖Δw‖ / ‖w‖ per epoch",
    }
    x = [e + 1 for e in epochs]
    fig = Figure(figsize=(13, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins (a constrained layout measures every text twice: most of the drawing time).
    axes = fig.subplots(1, 3, gridspec_kw={"left": 0.06, "right": 0.99, "bottom": 0.13, "top": 0.91, "wspace": 0.22})
    colours = [f"C{i % 10}" for i in range(len(stats.names))]
    for ax, family in zip(axes, FAMILIES, strict=True):
        for name, colour in zip(stats.names, colours, strict=True):
            values = stats.history.get(f"{family}/{name}", [])[-len(x) :]
            shown = [v if v > 0 and math.isfinite(v) else math.nan for v in values]
            ax.plot(x[-len(shown) :], shown, color=colour, marker="." if len(x) < 30 else None, label=name)
        ax.set_yscale("log")
        ax.set_title(titles[family], **TITLE)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("value (log scale)")
    axes[-1].legend(fontsize="small", loc="best", title="layer (input → output)")
    fig.savefig(path, pil_kwargs={"compress_level": 1})
    return path
