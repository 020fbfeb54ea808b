"""The built-in initialisers: how a layer's parameters start.

Each is `init(shape, fan_in, fan_out, rng)`, returning float64 values that the layer casts to its dtype. For
a dense kernel of shape (inputs, units), fan_in = inputs and fan_out = units. The variance-scaling families
keep the variance of activations (forward) or gradients (backward) roughly constant through the layers:

    glorot (Xavier):  Var(w) = 2 / (fan_in + fan_out)     for tanh, sigmoid, softmax, linear
    he (Kaiming):     Var(w) = 2 / fan_in                 for relu and its relatives
    lecun:            Var(w) = 1 / fan_in                 for selu (self-normalising networks)

A `_uniform` variant draws from U(-l, l) with l = √(3·Var); a `_normal` one from N(0, Var), untruncated (as
PyTorch's `xavier_normal_` and `kaiming_normal_`; Keras truncates at two standard deviations and rescales).
A dense layer's `init = "auto"` takes its activation's `default_init`.

An initialiser that draws nothing from `rng` (zeros, constant) declares `deterministic = True`: the conformance
kit (`framework.testing.check_initializer`) then checks that it leaves `rng` untouched, so that a layer's
zero biases do not shift the draws of the layers after it, instead of checking that seeds change its values.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from framework.components import Array, Initializer, Params
from framework.markers import hookimpl


class GlorotUniform(Initializer):
    """w ~ U(-l, l), l = √(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""

    name: ClassVar[str] = "glorot_uniform"

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)


class GlorotNormal(Initializer):
    """w ~ N(0, σ²), σ = √(2 / (fan_in + fan_out))."""

    name: ClassVar[str] = "glorot_normal"

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


class HeUniform(Initializer):
    """w ~ U(-l, l), l = √(6 / fan_in) (He et al. 2015)."""

    name: ClassVar[str] = "he_uniform"

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        limit = math.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape)


class HeNormal(Initializer):
    """w ~ N(0, σ²), σ = √(2 / fan_in) (He et al. 2015)."""

    name: ClassVar[str] = "he_normal"

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


class LecunUniform(Initializer):
    """w ~ U(-l, l), l = √(3 / fan_in) (LeCun et al. 1998)."""

    name: ClassVar[str] = "lecun_uniform"

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        limit = math.sqrt(3.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape)


class LecunNormal(Initializer):
    """w ~ N(0, σ²), σ = √(1 / fan_in): with selu, activations keep mean 0 and variance 1."""

    name: ClassVar[str] = "lecun_normal"

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        return rng.normal(0.0, math.sqrt(1.0 / fan_in), size=shape)


class OrthogonalParams(Params):
    gain: float = Field(1.0, gt=0, description="Factor g of the orthogonal matrix: W = g·Q.")


class Orthogonal(Initializer):
    """W = g·Q: Q from the QR decomposition of a standard normal matrix, columns (or rows) orthonormal.

    The array is seen as a matrix of prod(shape[:-1]) rows and shape[-1] columns; QR is taken of the taller
    orientation, so a tall W has orthonormal columns (WᵀW = g²I) and a wide one orthonormal rows (WWᵀ = g²I).
    Q's column signs are made those of R's diagonal, which makes Q uniformly (Haar) distributed over the
    orthogonal matrices (Mezzadri 2007); orthogonal initialisation itself is from Saxe et al. (2014).
    """

    name: ClassVar[str] = "orthogonal"
    Params: ClassVar[type[Params]] = OrthogonalParams
    params: OrthogonalParams

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        columns = shape[-1] if shape else 1
        rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
        a = rng.normal(0.0, 1.0, size=(max(rows, columns), min(rows, columns)))
        q, r = np.linalg.qr(a)  # q: orthonormal columns
        # A unique, Haar-distributed Q: flip the columns where R's diagonal is negative. Not np.sign, whose 0
        # for an exactly zero diagonal entry (a degenerate draw) would zero a whole column.
        q *= np.where(np.diag(r) < 0, -1.0, 1.0)
        if rows < columns:
            q = q.T
        return self.params.gain * q.reshape(shape)


class Zeros(Initializer):
    """w = 0 (the default for biases)."""

    name: ClassVar[str] = "zeros"
    deterministic: ClassVar[bool] = True

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        return np.zeros(shape)


class ConstantParams(Params):
    value: float = Field(0.0, allow_inf_nan=False, description="The value c of every element.")


class Constant(Initializer):
    """w = c for every element."""

    name: ClassVar[str] = "constant"
    deterministic: ClassVar[bool] = True
    Params: ClassVar[type[Params]] = ConstantParams
    params: ConstantParams

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        return np.full(shape, self.params.value)


class NormalParams(Params):
    mean: float = Field(0.0, allow_inf_nan=False, description="Mean μ of the normal distribution.")
    stddev: float = Field(0.01, gt=0, allow_inf_nan=False, description="Standard deviation σ.")


class Normal(Initializer):
    """w ~ N(μ, σ²), by default σ = 0.01 (the `init = "normal"` of the first release)."""

    name: ClassVar[str] = "normal"
    Params: ClassVar[type[Params]] = NormalParams
    params: NormalParams

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        return rng.normal(self.params.mean, self.params.stddev, size=shape)


class UniformParams(Params):
    low: float = Field(-0.05, allow_inf_nan=False, description="Lower bound a of U(a, b).")
    high: float = Field(0.05, allow_inf_nan=False, description="Upper bound b of U(a, b) (b > a).")

    @model_validator(mode="after")
    def _high_above_low(self) -> UniformParams:
        # Refused when the experiment is validated (not when weights are drawn), and reported at `high`, so
        # that the message names the key path: `model.layers.0.init.high: must be above low (0.1) ...`.
        if self.high <= self.low:
            problem = "must be above low ({low}): U(low, high) needs low < high"
        elif not math.isfinite(self.high - self.low):  # numpy's uniform would raise OverflowError at build
            problem = "is too far from low ({low}): high - low must be a finite float"
        else:
            return self
        error = PydanticCustomError("uniform_bounds", problem, {"low": self.low})
        raise ValidationError.from_exception_data(
            type(self).__name__, [InitErrorDetails(type=error, loc=("high",), input=self.high)]
        )


class Uniform(Initializer):
    """w ~ U(a, b), by default U(-0.05, 0.05) (as Keras's RandomUniform)."""

    name: ClassVar[str] = "uniform"
    Params: ClassVar[type[Params]] = UniformParams
    params: UniformParams

    def __call__(self, shape: tuple[int, ...], fan_in: int, fan_out: int, rng: np.random.Generator) -> Array:
        return rng.uniform(self.params.low, self.params.high, size=shape)


BUILTIN: list[type[Initializer]] = [
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    Orthogonal,
    Zeros,
    Constant,
    Normal,
    Uniform,
]


@hookimpl
def register_initializers() -> list[type[Initializer]]:
    return list(BUILTIN)
