"""The built-in activations: identity, sigmoid, tanh, relu and leaky_relu.

Each `forward(z, out)` writes f(z) into `out` when given (else into a new array) and returns it; each
`backward(z, a, grad)` turns dL/da into dL/dz = f'(z) * dL/da, reusing `grad`'s memory. Both keep the dtype
of their inputs (numpy 2 treats Python scalars as "weak", so `float32 * 0.5` stays float32).

At the kink z = 0, relu and leaky_relu use the derivative of the left side: relu'(0) = 0 and
leaky_relu'(0) = negative_slope (as PyTorch and TensorFlow do).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import Activation, Array, Params
from framework.markers import hookimpl

_CONSTANTS: dict[tuple[float, np.dtype[Any]], Array] = {}


def constant(value: float, dtype: np.dtype[Any]) -> Array | float:
    """`value` as a read-only 0-d array of a floating `dtype` (other dtypes get the Python number back).

    numpy 2 promotes a Python scalar operand through its "weak scalar" rules on every ufunc call, which costs
    0.3-0.5 µs on a small array (`np.multiply(a, 0.5, out=a)` 0.84 µs against 0.39 µs with a 0-d float32
    array; numpy 2.4, 1 thread). A 0-d array of the other operand's dtype holds the same rounded number, so the
    result is bit for bit the same; the per-batch path of a small model makes dozens of such calls.
    """
    if dtype.kind != "f":
        return value
    key = (value, dtype)
    found = _CONSTANTS.get(key)
    if found is None:
        if len(_CONSTANTS) > 256:  # scales such as 1/n for every batch size seen: keep the cache bounded
            _CONSTANTS.clear()
        found = _CONSTANTS[key] = np.array(value, dtype=dtype)
        found.flags.writeable = False
    return found


# log of the largest finite value: e^x overflows above it.
_EXP_LIMIT = {np.dtype(np.float32): 88.0, np.dtype(np.float64): 709.0}
_min = np.minimum.reduce  # the ufunc's reduce directly: `z.min()` adds a Python wrapper (about 0.15 µs)


_SMALL = 64
"""Up to this many elements, `sigmoid` goes through logaddexp (fewer calls, more time per element)."""


def sigmoid(z: Array, out: Array | None = None) -> Array:
    """σ(z) = 1 / (1 + e^-z), without overflow for any z and accurate (relatively) in both tails.

    Three ways, all within a few ulp of the formula (the lower tail included, where 1 - σ(-z) would lose it
    all), chosen for speed (1 thread, numpy 2.4; the original seven-call form below took 4.0 µs on W1's 4 x 1
    output and 60 µs on 1797 x 10):
    - small arrays (per-call overhead dominates): σ(z) = e^(-softplus(-z)), softplus by `logaddexp`, which
      never overflows: four calls, 1.6 µs on 4 x 1 (but logaddexp costs 11 ns an element);
    - otherwise, when no element can overflow e^-z (none below -88 in float32, -709 in float64, no NaN):
      1 / (1 + e^-z) as written, a minimum and four calls: 20 µs on 1797 x 10;
    - otherwise through e^-|z|, which cannot overflow, and a mask: seven calls.
    """
    out = np.empty_like(z) if out is None else out
    if z.size <= _SMALL and z.dtype.kind == "f":
        np.negative(z, out=out)  # `out` may be `z` itself: element-wise calls only
        np.logaddexp(constant(0.0, z.dtype), out, out=out)  # softplus(-z) = log(1 + e^-z) >= 0
        np.negative(out, out=out)
        np.exp(out, out=out)  # e^(-log(1 + e^-z)) = σ(z): at most 1, and 0 only by underflow
        return out
    limit = _EXP_LIMIT.get(z.dtype)
    if limit is not None and z.size and _min(z, axis=None) > -limit:  # False for a NaN as well
        one = constant(1.0, z.dtype)
        np.negative(z, out=out)  # `out` may be `z` itself: element-wise calls from here on
        np.exp(out, out=out)  # e^-z, finite
        np.add(out, one, out=out)
        np.reciprocal(out, out=out)  # 1 / (1 + e^-z)
        return out
    mask = z >= 0  # taken before `out` is written: `out` may be `z` itself
    np.abs(z, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)  # e = e^-|z| in (0, 1]: never overflows
    np.divide(out, out + 1, out=out)  # σ(-|z|) = e / (1 + e), exact in the lower tail
    np.subtract(1, out, out=out, where=mask)  # σ(|z|) = 1 - σ(-|z|) for z ≥ 0 (≥ 1/2, no cancellation)
    return out


class _Scratch:
    """A buffer for the derivative kept across batches of the same shape, so that backward allocates nothing
    (W5's tanh layer: `a * a` on 64 x 64 cost 0.5 µs more per step than writing into a kept buffer)."""

    _scratch: Array | None = None
    _one: Array | float = 1.0  # 1 in the scratch's dtype (see `constant`)

    def scratch(self, like: Array) -> Array:
        buf = self._scratch
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._scratch = np.empty_like(like)
            self._one = constant(1.0, like.dtype)
        return buf


class Identity(Activation):
    """f(z) = z; f'(z) = 1."""

    name: ClassVar[str] = "identity"
    is_identity: ClassVar[bool] = True

    def forward(self, z: Array, out: Array | None = None) -> Array:
        if out is None:
            return z.copy()
        np.copyto(out, z)
        return out

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        return grad  # dL/dz = 1 * dL/da


class Sigmoid(_Scratch, Activation):
    """f(z) = 1 / (1 + e^-z); f'(z) = f(z) (1 - f(z))."""

    name: ClassVar[str] = "sigmoid"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return sigmoid(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        one_minus_a = self.scratch(a)
        np.subtract(self._one, a, out=one_minus_a)  # 1 - a
        grad *= a  # dL/da * a
        grad *= one_minus_a  # * (1 - a) = dL/dz
        return grad


class Tanh(_Scratch, Activation):
    """f(z) = tanh(z); f'(z) = 1 - tanh(z)^2."""

    name: ClassVar[str] = "tanh"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return np.tanh(z, out=np.empty_like(z) if out is None else out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        slope = self.scratch(a)
        np.multiply(a, a, out=slope)  # a²
        np.subtract(self._one, slope, out=slope)  # f'(z) = 1 - a²
        grad *= slope  # dL/dz = f'(z) * dL/da
        return grad


class Relu(Activation):
    """f(z) = max(z, 0); f'(z) = 1 if z > 0 else 0 (so f'(0) = 0)."""

    name: ClassVar[str] = "relu"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return np.maximum(z, constant(0.0, z.dtype), out=np.empty_like(z) if out is None else out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        np.multiply(grad, np.greater(z, constant(0.0, z.dtype)), out=grad)  # dL/dz = [z > 0] * dL/da
        return grad


class LeakyReluParams(Params):
    negative_slope: float = Field(0.01, ge=0, description="Slope s of f(z) = s·z for z <= 0.")


class LeakyRelu(Activation):
    """f(z) = z if z > 0 else s·z; f'(z) = 1 if z > 0 else s (so f'(0) = s)."""

    name: ClassVar[str] = "leaky_relu"
    Params: ClassVar[type[Params]] = LeakyReluParams
    params: LeakyReluParams

    def forward(self, z: Array, out: Array | None = None) -> Array:
        out = np.empty_like(z) if out is None else out
        negative = z <= 0  # taken before `out` is written: `out` may be `z` itself
        np.copyto(out, z)  # z above zero ...
        np.multiply(out, self.params.negative_slope, out=out, where=negative)  # ... s·z at or below it
        return out

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        # dL/dz = s * dL/da where z <= 0; elsewhere dL/da is already dL/dz and is left untouched.
        np.multiply(grad, self.params.negative_slope, out=grad, where=z <= 0)
        return grad


@hookimpl
def register_activations() -> list[type[Activation]]:
    return [Identity, Sigmoid, Tanh, Relu, LeakyRelu]
