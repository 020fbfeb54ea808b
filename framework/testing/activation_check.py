"""The conformance check of activations: backward against central finite differences, `out`, dtypes, and the
shape contract (element-wise, or row by row)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from framework.components import Activation, Array
from framework.testing.numeric import (
    F32,
    assert_dtype,
    assert_gradient,
    assert_same,
    away_from_zero,
    numerical_gradient,
)

RTOL_LAYOUT = 1e-12
"""How far f of a reshaped copy (or of one row alone) may be from f of the batch: a few float64 roundings,
which a different memory layout may change in a vectorised kernel, but far below any real dependence."""


def check_activation(act: Activation, seed: int = 0) -> None:
    """An activation's backward matches finite differences; forward writes into `out`; dtype is kept; an
    element-wise one (`elementwise = True`) really is, and one that is not treats each row on its own.

    Every input is a 2-D batch (samples x units); an element-wise activation is also given other shapes.
    The finite-difference check of L = Σ f(z)·R covers the whole Jacobian, so it holds for both kinds.
    """
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
    if act.elementwise:
        _check_elementwise(act, z, np.asarray(a), what)
    else:
        _check_rows(act, z, np.asarray(a), what)

    z32 = z.astype(np.float32)
    a32 = act.forward(z32)
    assert_dtype(f"{what}: forward", a32, F32)
    assert_dtype(f"{what}: forward(out=)", act.forward(z32, out=np.empty_like(z32)), F32)
    assert_dtype(f"{what}: backward", act.backward(z32, a32, np.ones_like(z32)), F32)
    wide = np.linspace(-30, 30, 61)
    if not act.elementwise:
        wide = np.stack([wide, wide[::-1] / 3])  # two rows of 61 units
    if not np.all(np.isfinite(act.forward(wide))):
        raise AssertionError(f"{what}: forward is not finite for inputs in [-30, 30]")


def _check_elementwise(act: Activation, z: Array, a: Array, what: str) -> None:
    # a_ij must depend on z_ij alone: the same values for the same elements, however the batch is laid out.
    def unflatten(r: Array) -> Array:
        return r.reshape(z.shape)

    layouts: dict[str, tuple[Array, Callable[[Array], Array]]] = {
        "flattened to 1-D": (z.reshape(-1), unflatten),
        "reshaped to (2, 10)": (z.reshape(2, -1), unflatten),
        "transposed": (np.ascontiguousarray(z.T), np.transpose),
        "reversed": (z[::-1, ::-1].copy(), lambda r: r[::-1, ::-1]),
    }
    for layout, (laid_out, back) in layouts.items():
        result = np.asarray(act.forward(laid_out))
        if result.shape != laid_out.shape:
            raise AssertionError(
                f"{what}: elementwise = True, but forward of a batch {layout} returned shape {result.shape}"
            )
        np.testing.assert_allclose(
            back(result),
            a,
            rtol=RTOL_LAYOUT,
            atol=1e-15,
            err_msg=f"{what}: elementwise = True, but forward of the batch {layout} gives other values; "
            "help: set elementwise = False on an activation that mixes the elements of a row",
        )


def _check_rows(act: Activation, z: Array, a: Array, what: str) -> None:
    # Each row is a sample: its outputs must not depend on the other rows of the batch.
    for i in range(len(z)):
        alone = np.asarray(act.forward(z[i : i + 1].copy()))
        np.testing.assert_allclose(
            alone[0],
            a[i],
            rtol=RTOL_LAYOUT,
            atol=1e-15,
            err_msg=f"{what}: row {i} alone gives other outputs than within the batch; an activation with "
            "elementwise = False may mix the units of a row, never the rows of a batch",
        )
