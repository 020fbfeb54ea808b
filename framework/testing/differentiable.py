"""Checks of the differentiable components: activations, losses and layers, against finite differences.

Every check runs the component in float64 against central finite differences, then in float32 for dtype
preservation, and twice for determinism. Each raises an AssertionError naming the component and the rule
it breaks.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from framework.components import Activation, Array, Layer, Loss, Task
from framework.testing.numeric import (
    F32,
    F64,
    assert_dtype,
    assert_gradient,
    assert_same,
    away_from_zero,
    numerical_gradient,
)

# (task, n_outputs, n_classes): a loss is checked on every problem it accepts (its `tasks`, `check_outputs`).
LOSS_PROBLEMS: list[tuple[Task, int, int | None]] = [
    ("regression", 1, None),
    ("regression", 3, None),
    ("binary", 1, 2),
    ("binary", 2, 2),
    ("multiclass", 4, 4),
]


def check_activation(act: Activation, seed: int = 0) -> None:
    """An activation's backward matches finite differences; forward writes into `out`; dtype is kept."""
    what = f"activation {act.name!r}"
    rng = np.random.default_rng(seed)
    z = away_from_zero(rng, (5, 4))
    weights = rng.normal(size=z.shape)  # L = sum(f(z) * R), so dL/da = R

    a = act.forward(z)
    if np.shape(a) != z.shape:
        raise AssertionError(f"{what}: forward returned shape {np.shape(a)} for input {z.shape}")
    z_before, a_before = z.copy(), np.array(a, copy=True)
    analytic = np.array(act.backward(z, a, weights.copy()), copy=True)
    assert_same(f"{what}: backward must not change z", z, z_before)
    assert_same(f"{what}: backward must not change a", a, a_before)
    assert_gradient(
        f"{what}: backward", analytic, numerical_gradient(lambda: float(np.sum(act.forward(z) * weights)), z)
    )

    out = np.full_like(z, np.nan)
    if act.forward(z, out=out) is not out:
        raise AssertionError(f"{what}: forward(z, out=buffer) must write into the buffer and return it")
    assert_same(f"{what}: forward(z, out) differs from forward(z)", out, act.forward(z))
    assert_same(f"{what}: forward is not deterministic", act.forward(z), act.forward(z))

    z32 = z.astype(np.float32)
    a32 = act.forward(z32)
    assert_dtype(f"{what}: forward", a32, F32)
    assert_dtype(f"{what}: forward(out=)", act.forward(z32, out=np.empty_like(z32)), F32)
    assert_dtype(f"{what}: backward", act.backward(z32, a32, np.ones_like(z32)), F32)
    wide = np.linspace(-30, 30, 61)
    if not np.all(np.isfinite(act.forward(wide))):
        raise AssertionError(f"{what}: forward is not finite for inputs in [-30, 30]")


def _problem(loss: Loss, task: Task, n_out: int, n_classes: int | None, dtype: np.dtype[Any]) -> tuple[Array, Array]:
    rng = np.random.default_rng(0)
    n = 6
    y = rng.normal(size=(n, n_out)) if n_classes is None else rng.permutation(np.arange(n) % n_classes)
    if task == "binary" and n_out == 1:
        y = y.reshape(n)
    outputs = (2 * rng.normal(size=(n, n_out))).astype(dtype)
    return outputs, loss.prepare_targets(y, n_out, dtype)


def check_loss(loss: Loss) -> None:
    """On every problem the loss accepts: gradient = finite differences of value, shapes, dtypes, purity."""
    what = f"loss {loss.name!r}"
    problems = [
        (task, n_out, n_cls)
        for task, n_out, n_cls in LOSS_PROBLEMS
        if task in loss.tasks and loss.check_outputs(n_out, task, n_cls) is None
    ]
    if not problems:
        raise AssertionError(f"{what}: accepts none of the test problems {LOSS_PROBLEMS} (check `tasks`)")
    for task, n_out, n_cls in problems:
        where = f"{what} on a {task} problem with {n_out} output(s)"
        outputs, targets = _problem(loss, task, n_out, n_cls, F64)
        if targets.shape != outputs.shape:
            raise AssertionError(f"{where}: prepare_targets gave shape {targets.shape}, outputs are {outputs.shape}")
        before = outputs.copy(), targets.copy()
        value = loss.value(outputs, targets)
        if not isinstance(value, float) or not np.isfinite(value):
            raise AssertionError(f"{where}: value() must return a finite Python float, got {value!r}")
        analytic = np.array(loss.gradient(outputs, targets), copy=True)
        assert_same(f"{where}: value/gradient must not change the outputs", outputs, before[0])
        assert_same(f"{where}: value/gradient must not change the targets", targets, before[1])

        def value_at(o: Array = outputs, t: Array = targets) -> float:
            return loss.value(o, t)

        assert_gradient(f"{where}: gradient", analytic, numerical_gradient(value_at, outputs))
        assert_same(f"{where}: value is not deterministic", loss.value(outputs, targets), value)
        link = np.asarray(loss.link(outputs))
        if link.shape != outputs.shape:
            raise AssertionError(f"{where}: link() returned shape {link.shape} for outputs {outputs.shape}")
        per_sample = loss.per_sample(outputs, targets)
        if per_sample is not None:
            if np.shape(per_sample) != (len(outputs),):
                raise AssertionError(f"{where}: per_sample() must return shape ({len(outputs)},)")
            np.testing.assert_allclose(np.mean(per_sample), value, rtol=1e-10, err_msg=f"{where}: mean of per_sample")
        both_value, both_link = loss.value_and_link(outputs, targets)
        np.testing.assert_allclose(both_value, value, rtol=1e-12, err_msg=f"{where}: value_and_link's value")
        np.testing.assert_allclose(both_link, link, rtol=1e-12, atol=1e-300, err_msg=f"{where}: value_and_link's link")
        three_value, three_link, three_per_sample = loss.value_link_and_per_sample(outputs, targets)
        np.testing.assert_allclose(
            three_value, value, rtol=1e-12, err_msg=f"{where}: value_link_and_per_sample's value"
        )
        np.testing.assert_allclose(
            three_link, link, rtol=1e-12, atol=1e-300, err_msg=f"{where}: value_link_and_per_sample's link"
        )
        if (three_per_sample is None) != (per_sample is None):
            raise AssertionError(f"{where}: value_link_and_per_sample's per-sample losses differ from per_sample()")
        if per_sample is not None and three_per_sample is not None:
            np.testing.assert_allclose(
                three_per_sample, per_sample, rtol=1e-12, err_msg=f"{where}: value_link_and_per_sample's per-sample"
            )
        outputs32, targets32 = _problem(loss, task, n_out, n_cls, F32)
        assert_dtype(f"{where}: prepare_targets", targets32, F32)
        assert_dtype(f"{where}: gradient", loss.gradient(outputs32, targets32), F32)
        if not np.isfinite(loss.value(outputs32, targets32)):
            raise AssertionError(f"{where}: value() is not finite in float32")


def check_layer(layer: Layer, *, input_dim: int = 4, batch: int = 5, seed: int = 0) -> None:
    """A layer builds deterministically, its backward matches finite differences, it keeps the dtype.

    The finite differences go through `forward(x, training=True)`, the pass that backward differentiates.
    A layer with randomness in training (dropout) must make it reproducible through `state_dict()` and
    `load_state_dict()` (its generator's state), which the check restores before every forward pass.

    Args:
        layer: an unbuilt layer (`build` is called here).
    """
    what = f"layer {layer.name!r}"
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
        return float(np.sum(train_forward() * weights))

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
