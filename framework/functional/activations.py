"""The forward formulas of the built-in activations, f(z), by name.

Each function is `f(z, out=None, **params) -> a`, writing into `out` when given (which may be `z` itself) and
keeping the dtype. The classes in `plugins/activations/` call these for `forward` and hold the derivative;
`ACTIVATIONS` maps each built-in name to its function, for the numpy-only pyfunc loader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .core import Array, constant, sigmoid, softmax


def _out(z: Array, out: Array | None) -> Array:
    return np.empty_like(z) if out is None else out


def identity(z: Array, out: Array | None = None) -> Array:
    """f(z) = z."""
    if out is None:
        return z.copy()
    np.copyto(out, z)
    return out


def tanh(z: Array, out: Array | None = None) -> Array:
    """f(z) = tanh(z)."""
    return np.tanh(z, out=_out(z, out))


def relu(z: Array, out: Array | None = None) -> Array:
    """f(z) = max(z, 0)."""
    result: Array = np.maximum(z, constant(0.0, z.dtype), out=_out(z, out))
    return result


def leaky_relu(z: Array, out: Array | None = None, negative_slope: float = 0.01) -> Array:
    """f(z) = z for z > 0, s·z otherwise."""
    out = _out(z, out)
    negative = z <= 0  # taken before `out` is written: `out` may be `z` itself
    np.copyto(out, z)  # z above zero ...
    np.multiply(out, constant(negative_slope, z.dtype), out=out, where=negative)  # ... s·z at or below it
    return out


def _softmax(z: Array, out: Array | None = None) -> Array:
    return softmax(z, out=out)


ACTIVATIONS: dict[str, Callable[..., Array]] = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "softmax": _softmax,
}
"""Every built-in activation's forward function, by its registered name."""


def activation_function(name: str, params: dict[str, Any] | None = None) -> Callable[[Array], Array]:
    """f(z) for the built-in activation `name` with `params` (a KeyError for a name that is not built in)."""
    function = ACTIVATIONS[name]
    values = dict(params or {})
    if not values:
        return function
    return lambda z: function(z, None, **values)
