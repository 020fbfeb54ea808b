"""The conformance check of activations: backward against central finite differences, `out`, dtypes."""

from __future__ import annotations

import numpy as np

from framework.components import Activation
from framework.testing.numeric import (
    F32,
    assert_dtype,
    assert_gradient,
    assert_same,
    away_from_zero,
    numerical_gradient,
)


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
