"""Numerical helpers of the conformance kit: central finite differences and well-behaved test inputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from framework.components import Array

RTOL = 1e-5
"""Relative tolerance of the float64 gradient checks: central differences with eps = 1e-6 are accurate to
about 1e-9, so this leaves room for ordinary rounding but not for a wrong formula."""
ATOL = 1e-8
F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)


def numerical_gradient(
    f: Callable[[], float], x: Array, eps: float = 1e-6, indices: Sequence[int] | None = None
) -> Array:
    """Central differences (f(x + eps) - f(x - eps)) / 2 eps, one element of `x` (changed in place) at a time.

    `x` is restored after each element, so `f` always sees the original values except for the one nudged.
    With `indices` (flat positions), only those elements are differenced; the others stay 0.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    for i in range(x.size) if indices is None else indices:
        original = x.flat[i]
        x.flat[i] = original + eps
        f_plus = f()
        x.flat[i] = original - eps
        f_minus = f()
        x.flat[i] = original
        grad.flat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    """Values in ±[0.1, 3]: finite differences never straddle a kink at 0 (relu, leaky_relu)."""
    return np.asarray(rng.uniform(0.1, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape))


def assert_gradient(what: str, analytic: Any, numeric: Array, rtol: float = RTOL, atol: float = ATOL) -> None:
    """`analytic` equals the finite-difference `numeric` gradient, or an AssertionError saying where."""
    analytic = np.asarray(analytic)
    if analytic.shape != numeric.shape:
        raise AssertionError(f"{what}: the gradient has shape {analytic.shape}, expected {numeric.shape}")
    np.testing.assert_allclose(
        analytic, numeric, rtol=rtol, atol=atol, err_msg=f"{what} does not match central finite differences"
    )


def assert_dtype(what: str, value: Any, dtype: np.dtype[Any]) -> None:
    got = np.asarray(value).dtype
    if got != dtype:
        raise AssertionError(f"{what}: expected dtype {dtype}, got {got} (components must preserve the dtype)")


def assert_same(what: str, first: Any, second: Any) -> None:
    """Two results that must be identical (determinism, round trips), compared exactly."""
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second), err_msg=what)
