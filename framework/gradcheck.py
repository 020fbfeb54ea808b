"""Finite-difference check of an experiment's model and loss, whatever plugins they use (`backprop gradcheck`).

The experiment is built in float64; on its first `samples` training rows, the gradients backpropagation gives
(of every parameter array, and of the input) are compared with central differences of the loss, from the
conformance kit (`framework.testing.numeric.numerical_gradient`). The error of an array is

    max over its elements of |analytic - numeric| / max(|analytic|, |numeric|, 1e-3)

(relative, and absolute for gradients below 1e-3: central differences of a loss of order 1 carry about 5e-10
of rounding noise, which a gradient that is truly 0, such as a bias before batch_norm, would turn into a
large relative error). Random layers (dropout, noise) draw the same numbers in
every evaluation: their state is restored before each forward pass. Large arrays are checked on
`max_elements` positions drawn with the experiment's seed.

When an array fails, the component to blame is the one whose backward first goes wrong going back from the
loss: the highest layer with a failing array (with the parameterless layers above it, up to the next layer
that passes), and the loss when that is the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from framework.testing.numeric import numerical_gradient

if TYPE_CHECKING:
    from framework.build import Run
    from framework.components import Layer

FLOOR = 1e-3  # gradients smaller than this are compared absolutely (see the module docstring)
TOLERANCE = 1e-5
"""Default: central differences with eps = 1e-6 in float64 are good to about 1e-9, so 1e-5 leaves room for
rounding and for a kink (relu at 0) met by chance, not for a wrong formula."""


@dataclass
class ArrayCheck:
    name: str  # deriv_w1, ..., deriv_input
    layer: int  # 1-based; 0 for the input
    shape: tuple[int, ...]
    checked: int
    error: float

    def ok(self, tolerance: float) -> bool:
        return self.error <= tolerance


def relative_error(analytic: Any, numeric: Any) -> float:
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), FLOOR)))


def check(run: Run, samples: int = 4, max_elements: int = 200) -> list[ArrayCheck]:
    """Every parameter array's and the input's gradient against finite differences (float64 run)."""
    from framework.explain import parameter_names

    trainer = run.trainer
    model, loss = trainer.model, trainer.loss
    rows = min(samples, len(trainer.train))
    x = np.array(trainer.train.X[:rows], dtype=np.float64)
    targets = trainer.train.targets[:rows]
    layers = model.layers
    states = [layer.state_dict() for layer in layers]
    rng = np.random.default_rng(trainer.experiment.seed)

    def value(inputs: Any) -> float:
        for layer, state in zip(layers, states, strict=True):
            layer.load_state_dict(state)  # the same dropout masks and noise in every evaluation
        return float(loss.value(model.forward(inputs, True), targets)) + model.penalty()

    layers[0].needs_input_grad = True  # the input's gradient too (training leaves it off)
    for layer, state in zip(layers, states, strict=True):
        layer.load_state_dict(state)
    grad: Any = np.array(loss.gradient(model.forward(x, True), targets), copy=True)
    for layer in reversed(layers):
        grad = layer.backward(grad)
    input_grad = np.array(grad, copy=True)
    analytic = [np.array(g, copy=True) for g in model.gradients()]

    checks = []
    owners = [
        (i, name) for i, layer in enumerate(layers, start=1) for name in (f"{n}{i}" for n in parameter_names(layer))
    ]
    for (i, name), param, expected in zip(owners, model.parameters(), analytic, strict=True):
        chosen = _positions(param.size, max_elements, rng)
        numeric = numerical_gradient(lambda: value(x), param, indices=chosen)
        checks.append(ArrayCheck(f"deriv_{name}", i, param.shape, len(chosen),
                                 relative_error(expected.flat[chosen], numeric.flat[chosen])))  # fmt: skip
    chosen = _positions(x.size, max_elements, rng)
    numeric = numerical_gradient(lambda: value(x), x, indices=chosen)
    checks.append(ArrayCheck("deriv_input", 0, x.shape, len(chosen),
                             relative_error(input_grad.flat[chosen], numeric.flat[chosen])))  # fmt: skip
    return checks


def _positions(size: int, most: int, rng: np.random.Generator) -> list[int]:
    if size <= most:
        return list(range(size))
    return sorted(int(i) for i in rng.choice(size, most, replace=False))


def suspects(run: Run, checks: list[ArrayCheck], tolerance: float) -> list[str]:
    """The components to blame for the failing arrays, each with the plugin that provides it (see the module)."""
    failing = {c.layer for c in checks if not c.ok(tolerance)}
    if not failing:
        return []
    layers = run.trainer.model.layers
    passing = {c.layer for c in checks if c.ok(tolerance)} - failing
    top = max(failing)
    first = max(top, 1)
    above = [i for i in passing if i > top]
    last = min(above) - 1 if above else len(layers)
    registry = run.registry
    blamed = [describe_layer(layers[i - 1], i, registry) for i in range(first, last + 1)]
    if last == len(layers):
        name = run.trainer.loss.name
        blamed.append(f"loss {name!r} (plugin {_plugin(registry, 'loss', name)!r})")
    return blamed


def describe_layer(layer: Layer, i: int, registry: Any) -> str:
    text = f"layer {i}: {layer.name!r} (plugin {_plugin(registry, 'layer', layer.name)!r})"
    activation = getattr(layer, "activation", None)
    if activation is not None and not activation.is_identity:
        text += f", activation {activation.name!r} (plugin {_plugin(registry, 'activation', activation.name)!r})"
    return text


def _plugin(registry: Any, kind: str, name: str) -> str:
    entry = registry.entries(kind).get(name)
    return str(entry.plugin) if entry is not None else "?"
