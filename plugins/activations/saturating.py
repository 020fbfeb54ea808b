"""Activations that saturate at both ends: sigmoid and tanh."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from framework import functional as F
from framework.components import Activation, Array
from framework.functional import activations as fa
from plugins.activations.scratch import Scratch


class Sigmoid(Scratch, Activation):
    """f(z) = 1 / (1 + e^-z); f'(z) = f(z) (1 - f(z))."""

    name: ClassVar[str] = "sigmoid"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return F.sigmoid(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        one_minus_a = self.scratch(a)
        np.subtract(self._one, a, out=one_minus_a)  # 1 - a
        grad *= a  # dL/da * a
        grad *= one_minus_a  # * (1 - a) = dL/dz
        return grad


class Tanh(Scratch, Activation):
    """f(z) = tanh(z); f'(z) = 1 - tanh(z)^2."""

    name: ClassVar[str] = "tanh"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.tanh(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        slope = self.scratch(a)
        np.multiply(a, a, out=slope)  # a²
        np.subtract(self._one, slope, out=slope)  # f'(z) = 1 - a²
        grad *= slope  # dL/dz = f'(z) * dL/da
        return grad
