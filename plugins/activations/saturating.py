"""Activations that saturate at both ends: sigmoid, tanh, hard_sigmoid, hard_tanh and softsign."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from framework import functional as F
from framework.components import Activation, Array, Params
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


class HardSigmoid(Scratch, Activation):
    """f(z) = relu6(z + 3)/6 = clip(z/6 + 1/2, 0, 1); f'(z) = 1/6 if -3 < z <= 3 else 0.

    PyTorch's hardsigmoid and Keras 3's hard_sigmoid (Keras 2 had 0.2·z + 0.5). Kinks at ±3, where f' is the
    left derivative: f'(-3) = 0, f'(3) = 1/6.
    """

    name: ClassVar[str] = "hard_sigmoid"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.hard_sigmoid(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        np.putmask(grad, self.flat(z, -3.0, 3.0), 0)  # dL/da where -3 < z <= 3, else 0 ...
        grad /= F.constant(6.0, grad.dtype)  # ... divided by 6: dL/dz
        return grad


class HardTanhParams(Params):
    min_value: float = Field(-1.0, allow_inf_nan=False, description="Lower bound m: f(z) = m for z <= m.")
    max_value: float = Field(1.0, allow_inf_nan=False, description="Upper bound M: f(z) = M for z >= M (M > m).")

    @model_validator(mode="after")
    def _max_above_min(self) -> HardTanhParams:
        # Reported at `max_value`, so that the message names the key path:
        # `model.layers.0.activation.max_value: must be above min_value (1.0) ...`.
        if self.max_value <= self.min_value:
            error = PydanticCustomError(
                "hard_tanh_bounds",
                "must be above min_value ({min_value}): hard_tanh clips z to [min_value, max_value]",
                {"min_value": self.min_value},
            )
            raise ValidationError.from_exception_data(
                type(self).__name__, [InitErrorDetails(type=error, loc=("max_value",), input=self.max_value)]
            )
        return self


class HardTanh(Scratch, Activation):
    """f(z) = clip(z, m, M) (by default m = -1, M = 1); f'(z) = 1 if m < z <= M else 0.

    Kinks at m and M, where f' is the left derivative: f'(m) = 0, f'(M) = 1.
    """

    name: ClassVar[str] = "hard_tanh"
    Params: ClassVar[type[Params]] = HardTanhParams
    params: HardTanhParams

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.hard_tanh(z, out, self.params.min_value, self.params.max_value)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        # dL/dz = dL/da where m < z <= M, else 0
        np.putmask(grad, self.flat(z, self.params.min_value, self.params.max_value), 0)
        return grad


class Softsign(Scratch, Activation):
    """f(z) = z / (1 + |z|); f'(z) = 1 / (1 + |z|)²."""

    name: ClassVar[str] = "softsign"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.softsign(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        # From z, not from a: 1 - |a| = 1/(1 + |z|) would lose its digits where |a| is close to 1.
        denominator = np.abs(z, out=self.scratch(z))
        denominator += self._one  # 1 + |z|
        grad /= denominator  # divided twice rather than by the square, which overflows for |z| > 1.8e19 (float32)
        grad /= denominator
        return grad
