"""The conformance check of layers: deterministic build, backward against finite differences, dtypes."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from framework.components import Array, Layer
from framework.testing.numeric import (
    F32,
    F64,
    assert_dtype,
    assert_gradient,
    assert_same,
    numerical_gradient,
)

_INSTALLED: list[Any] = []


def installed_registry() -> Any:
    """The registry of the installed plugins (built once per process)."""
    if not _INSTALLED:
        from framework.pluginmanager import create_plugin_manager
        from framework.registry import Registry

        _INSTALLED.append(Registry.from_host(create_plugin_manager(strict=False)))
    return _INSTALLED[0]


def attach_installed_components(layer: Layer) -> None:
    """Attach the components a layer's params name (its activation, initialisers), as a run would, from the
    installed plugins: a layer built by hand gets what the core gives it in a run."""
    from framework.components import component_fields

    if any(field not in layer.components for field in component_fields(type(layer.params))):
        installed_registry().attach_components(layer, where=layer.name)


def check_layer(layer: Layer, *, input_dim: int = 4, batch: int = 5, seed: int = 0) -> None:
    """A layer builds deterministically, its backward matches finite differences, it keeps the dtype.

    The finite differences go through `forward(x, training=True)`, the pass that backward differentiates.
    A layer with randomness in training (dropout) must make it reproducible through `state_dict()` and
    `load_state_dict()` (its generator's state), which the check restores before every forward pass.

    Args:
        layer: an unbuilt layer (`build` is called here).
    """
    what = f"layer {layer.name!r}"
    attach_installed_components(layer)
    width = layer.build(input_dim, F64, np.random.default_rng(seed))
    if not isinstance(width, int | np.integer) or width < 1:
        raise AssertionError(f"{what}: build() must return the output width (a positive int), got {width!r}")
    params, grads = layer.parameters(), layer.gradients()
    if len(params) != len(grads) or any(p.shape != g.shape for p, g in zip(params, grads, strict=True)):
        raise AssertionError(f"{what}: parameters() and gradients() must be parallel lists of equal shapes")
    for p in params:
        assert_dtype(f"{what}: parameter", p, F64)
    first = [p.copy() for p in params]
    layer.build(input_dim, F64, np.random.default_rng(seed))
    for p, q in zip(layer.parameters(), first, strict=True):
        assert_same(f"{what}: build() with the same seed must give the same parameters", p, q)

    rng = np.random.default_rng(seed + 1)
    for p in layer.parameters():
        p[...] = rng.normal(size=p.shape)  # biases often start at zero; make every parameter matter
    x = rng.normal(size=(batch, input_dim))
    weights = rng.normal(size=(batch, width))  # L = sum(out * R), so dL/d(out) = R
    get_state = getattr(layer, "state_dict", None)
    snapshot = copy.deepcopy(get_state()) if callable(get_state) else None

    def train_forward() -> Array:
        if snapshot:
            layer.load_state_dict(copy.deepcopy(snapshot))
        return layer.forward(x, True)

    out = np.array(train_forward(), copy=True)
    if out.shape != (batch, width):
        raise AssertionError(f"{what}: forward gave shape {out.shape}, expected {(batch, width)}")
    assert_same(
        f"{what}: forward(x, training=True) is not reproducible; keep the randomness in a generator that "
        "state_dict()/load_state_dict() save and restore",
        train_forward(),
        out,
    )
    layer.needs_input_grad = True
    dx = layer.backward(weights.copy())
    if dx is None:
        raise AssertionError(f"{what}: backward must return dL/d(input) when needs_input_grad is True")
    dx = np.array(dx, copy=True)
    analytic = [np.array(g, copy=True) for g in layer.gradients()]

    def loss() -> float:
        # The layer's own regularisation term is part of the loss it differentiates (dense's l1/l2).
        return float(np.sum(train_forward() * weights)) + layer.penalty()

    assert_gradient(f"{what}: dL/d(input)", dx, numerical_gradient(loss, x))
    for i, (p, g) in enumerate(zip(layer.parameters(), analytic, strict=True)):
        assert_gradient(f"{what}: gradient of parameter {i}", g, numerical_gradient(loss, p))
    train_forward()
    layer.needs_input_grad = False
    if layer.backward(weights.copy()) is not None:
        raise AssertionError(f"{what}: backward must return None when needs_input_grad is False")
    layer.needs_input_grad = True

    layer.build(input_dim, F32, np.random.default_rng(seed))
    x32 = x.astype(np.float32)
    out32 = layer.forward(x32, True)
    assert_dtype(f"{what}: forward", out32, F32)
    assert_dtype(f"{what}: inference forward", layer.forward(x32, False), F32)
    layer.forward(x32, True)
    assert_dtype(f"{what}: backward", layer.backward(np.ones_like(out32)), F32)
    for p, g in zip(layer.parameters(), layer.gradients(), strict=True):
        assert_dtype(f"{what}: parameter", p, F32)
        assert_dtype(f"{what}: gradient", g, F32)
