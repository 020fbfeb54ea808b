"""The conformance check of layers: deterministic build, backward against finite differences, dtypes, binding
into the model's flat buffer, and buffers (arrays such as running statistics) that the core can save and restore.
"""

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
    `load_state_dict()` (its generator's state), which the check restores before every forward pass; so are
    its buffers, which a training forward may update (batch_norm's running statistics). Parameters and
    buffers get random values first (biases, running means and variances start at 0 and 1, which would hide
    a formula that forgets them); buffers get values in [0.5, 2], valid for variances too.

    Forward and backward must leave the input unchanged (the layer below keeps it for its own backward). A
    layer whose `bind` adopts arrays must then use them (the model's flat buffer), and a layer with buffers
    must keep them stable and in its dtype, its evaluation output depending on them and its parameters alone
    (`check_buffers`).

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
    buffers = _float_buffers(layer)
    for b in buffers:
        b[...] = rng.uniform(0.5, 2.0, size=b.shape)
    kept_buffers = [b.copy() for b in buffers]
    x = rng.normal(size=(batch, input_dim))
    x_given = x.copy()
    weights = rng.normal(size=(batch, width))  # L = sum(out * R), so dL/d(out) = R
    get_state = getattr(layer, "state_dict", None)
    snapshot = copy.deepcopy(get_state()) if callable(get_state) else None

    def train_forward() -> Array:
        if snapshot:
            layer.load_state_dict(copy.deepcopy(snapshot))
        for live, kept in zip(buffers, kept_buffers, strict=True):
            live[...] = kept  # a training forward may update them (running statistics)
        return layer.forward(x, True)

    out = np.array(train_forward(), copy=True)
    assert_same(f"{what}: forward must leave its input x unchanged (the layer below may keep it)", x, x_given)
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
    assert_same(f"{what}: backward must leave the forward's input x unchanged", x, x_given)

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
    check_bind(layer, lambda: (train_forward(), layer.backward(weights.copy())), analytic)

    layer.build(input_dim, F32, np.random.default_rng(seed))
    twin = copy.deepcopy(layer)  # built, never run: what a fresh layer would compute from the same arrays
    x32 = x.astype(np.float32)
    out32 = layer.forward(x32, True)
    assert_dtype(f"{what}: forward", out32, F32)
    assert_dtype(f"{what}: inference forward", layer.forward(x32, False), F32)
    layer.forward(x32, True)
    assert_dtype(f"{what}: backward", layer.backward(np.ones_like(out32)), F32)
    for p, g in zip(layer.parameters(), layer.gradients(), strict=True):
        assert_dtype(f"{what}: parameter", p, F32)
        assert_dtype(f"{what}: gradient", g, F32)
    check_buffers(layer, twin, x32)


def _float_buffers(layer: Layer) -> list[Array]:
    return [b for b in layer.buffers().values() if np.asarray(b).dtype.kind == "f"]


def check_bind(layer: Layer, step: Any, expected: list[Array]) -> None:
    """If `bind` adopts arrays, the layer's parameters and gradients are then those arrays and backward writes
    its gradients into them: the model places them in one flat buffer (see `framework.model.Model`).

    Args:
        step: runs a training forward and backward on the layer.
        expected: the gradients that this step gave before binding.
    """
    what = f"layer {layer.name!r}"
    params = layer.parameters()
    if not params:
        return
    # Views of one flat buffer each, as Model._make_flat makes them, holding the current values.
    flat_p = np.concatenate([p.ravel() for p in params])
    flat_g = np.zeros_like(flat_p)
    p_views, g_views, offset = [], [], 0
    for p in params:
        p_views.append(flat_p[offset : offset + p.size].reshape(p.shape))
        g_views.append(flat_g[offset : offset + p.size].reshape(p.shape))
        offset += p.size
    if not layer.bind(p_views, g_views):
        return  # the layer keeps its own arrays; the model then hands the optimiser one array per parameter
    if any(a is not b for a, b in zip(layer.parameters(), p_views, strict=True)) or any(
        a is not b for a, b in zip(layer.gradients(), g_views, strict=True)
    ):
        raise AssertionError(f"{what}: after bind(), parameters() and gradients() must be the arrays bound")
    step()
    for i, (g, e) in enumerate(zip(g_views, expected, strict=True)):
        np.testing.assert_allclose(
            g, e, rtol=1e-12, atol=1e-14, err_msg=f"{what}: after bind(), backward must write gradient {i} into it"
        )


def check_buffers(layer: Layer, twin: Layer, x: Array) -> None:
    """A built layer's buffers are stable, keep its dtype, and make its evaluation output with its parameters.

    - `buffers()` gives the same arrays under the same names in the same order every time, training
      included: the core keeps them and copies saved values into them in place (best weights, the NaN guard,
      checkpoints, saved models);
    - they keep the layer's dtype (float32 here);
    - the evaluation output depends on them through their values only: changed in place, the layer computes
      what `twin` (a copy of the layer taken when it was built, never run) computes from the same parameters
      and buffers, so nothing is cached from older values; put back, the output is the first one again.
    """
    what = f"layer {layer.name!r}"
    named = layer.buffers()
    if not named:
        return
    arrays = list(named.values())

    def assert_stable(when: str) -> None:
        again = layer.buffers()
        if list(again) != list(named) or any(a is not b for a, b in zip(again.values(), arrays, strict=True)):
            raise AssertionError(
                f"{what}: buffers() must give the same arrays, names and order every time ({when}); the core "
                "copies saved values into them in place: update them in place, never replace them"
            )

    assert_stable("called twice")
    for name, b in named.items():
        assert_dtype(f"{what}: buffer {name!r}", b, F32)
    layer.forward(x, True)
    layer.backward(np.ones_like(layer.forward(x, True)))
    assert_stable("after a training step")
    for name, b in named.items():
        assert_dtype(f"{what}: buffer {name!r} after a training step", b, F32)

    saved = [b.copy() for b in arrays]
    before = np.array(layer.forward(x, False), copy=True)
    rng = np.random.default_rng(7)
    for b in _float_buffers(layer):
        b[...] = rng.uniform(0.5, 2.0, size=b.shape)
    changed = np.array(layer.forward(x, False), copy=True)
    for mine, theirs in zip(layer.parameters(), twin.parameters(), strict=True):
        theirs[...] = mine
    for mine, theirs in zip(arrays, twin.buffers().values(), strict=True):
        theirs[...] = mine
    assert_same(
        f"{what}: with its buffers changed in place, evaluation must compute from their new values (as a fresh "
        "layer given the same parameters and buffers does); cache nothing derived from them",
        changed,
        twin.forward(x, False),
    )
    for b, s in zip(arrays, saved, strict=True):
        b[...] = s
    assert_same(
        f"{what}: evaluation with the buffers put back must give the same output", layer.forward(x, False), before
    )
