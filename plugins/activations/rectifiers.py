"""Piecewise-linear activations: identity, relu, leaky_relu and relu6."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from framework import functional as F
from framework.components import Activation, Array, Params
from framework.functional import activations as fa
from plugins.activations.scratch import Scratch


class Identity(Activation):
    """f(z) = z; f'(z) = 1."""

    name: ClassVar[str] = "identity"
    is_identity: ClassVar[bool] = True

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.identity(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        return grad  # dL/dz = 1 * dL/da


class Relu(Activation):
    """f(z) = max(z, 0); f'(z) = 1 if z > 0 else 0 (so f'(0) = 0)."""

    name: ClassVar[str] = "relu"
    default_init: ClassVar[str] = "he_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.relu(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        np.multiply(grad, np.greater(z, F.constant(0.0, z.dtype)), out=grad)  # dL/dz = [z > 0] * dL/da
        return grad


class LeakyReluParams(Params):
    negative_slope: float = Field(0.01, ge=0, description="Slope s of f(z) = s·z for z <= 0.")


class LeakyRelu(Activation):
    """f(z) = z if z > 0 else s·z; f'(z) = 1 if z > 0 else s (so f'(0) = s)."""

    name: ClassVar[str] = "leaky_relu"
    Params: ClassVar[type[Params]] = LeakyReluParams
    params: LeakyReluParams
    default_init: ClassVar[str] = "he_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.leaky_relu(z, out, self.params.negative_slope)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        # dL/dz = s * dL/da where z <= 0; elsewhere dL/da is already dL/dz and is left untouched.
        np.multiply(grad, F.constant(self.params.negative_slope, grad.dtype), out=grad, where=z <= 0)
        return grad


class Relu6(Scratch, Activation):
    """f(z) = min(max(z, 0), 6); f'(z) = 1 if 0 < z <= 6 else 0.

    Kinks at 0 and 6, where f' is the left derivative: f'(0) = 0 (as relu'(0)) and f'(6) = 1 (PyTorch gives 0
    there).
    """

    name: ClassVar[str] = "relu6"
    default_init: ClassVar[str] = "he_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.relu6(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        np.putmask(grad, self.flat(z, 0.0, 6.0), 0)  # dL/dz = dL/da where 0 < z <= 6, else 0
        return grad
