"""The built-in activations: identity, sigmoid, tanh, relu and leaky_relu.

Each `forward(z, out)` writes f(z) into `out` when given (else into a new array) and returns it; each
`backward(z, a, grad)` turns dL/da into dL/dz = f'(z) * dL/da, reusing `grad`'s memory. Both keep the dtype
of their inputs (numpy 2 treats Python scalars as "weak", so `float32 * 0.5` stays float32).

At the kink z = 0, relu and leaky_relu use the derivative of the left side: relu'(0) = 0 and
leaky_relu'(0) = negative_slope (as PyTorch and TensorFlow do).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from framework.components import Activation, Array, Params
from framework.markers import hookimpl


def sigmoid(z: Array, out: Array | None = None) -> Array:
    """σ(z) = 1 / (1 + e^-z), without overflow for any z and accurate (relatively) in both tails."""
    out = np.empty_like(z) if out is None else out
    mask = z >= 0  # taken before `out` is written: `out` may be `z` itself
    np.abs(z, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)  # e = e^-|z| in (0, 1]: never overflows
    np.divide(out, out + 1, out=out)  # σ(-|z|) = e / (1 + e), exact in the lower tail
    np.subtract(1, out, out=out, where=mask)  # σ(|z|) = 1 - σ(-|z|) for z ≥ 0 (≥ 1/2, no cancellation)
    return out


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


class Sigmoid(Activation):
    """f(z) = 1 / (1 + e^-z); f'(z) = f(z) (1 - f(z))."""

    name: ClassVar[str] = "sigmoid"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return sigmoid(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        one_minus_a = 1 - a  # the one temporary
        grad *= a  # dL/da * a
        grad *= one_minus_a  # * (1 - a) = dL/dz
        return grad


class Tanh(Activation):
    """f(z) = tanh(z); f'(z) = 1 - tanh(z)^2."""

    name: ClassVar[str] = "tanh"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return np.tanh(z, out=np.empty_like(z) if out is None else out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        slope = a * a  # the one temporary: a²
        np.subtract(1, slope, out=slope)  # f'(z) = 1 - a²
        grad *= slope  # dL/dz = f'(z) * dL/da
        return grad


class Relu(Activation):
    """f(z) = max(z, 0); f'(z) = 1 if z > 0 else 0 (so f'(0) = 0)."""

    name: ClassVar[str] = "relu"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return np.maximum(z, 0, out=np.empty_like(z) if out is None else out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        np.multiply(grad, z > 0, out=grad)  # dL/dz = [z > 0] * dL/da
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
