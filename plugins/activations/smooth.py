"""Smooth activations, most of them smooth versions of relu: elu, selu, gelu, softplus, silu (swish), mish,
and exponential.

Each class's docstring states f(z) and f'(z); `forward` calls the formula in `framework.functional`, `backward`
writes dL/dz into `grad` through buffers kept across batches (`Scratch`), so a batch allocates nothing.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from framework.components import Activation, Array, Params
from framework.functional import activations as fa
from framework.functional import constant, sigmoid
from plugins.activations.scratch import Scratch


class _ExponentialLinear(Scratch, Activation):
    """λ·(z if z > 0 else α(e^z − 1)), the shared rule of elu (λ = 1) and selu; subclasses give α and λ."""

    def _alpha_scale(self) -> tuple[float, float]:
        raise NotImplementedError

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        alpha, scale = self._alpha_scale()
        slope = self.scratch(z)
        (positive,) = self.masks(z, 1)
        np.greater(z, constant(0.0, z.dtype), out=positive)
        np.add(a, constant(scale * alpha, a.dtype), out=slope)  # a + λα = λα·e^z: f'(z) at or below zero ...
        np.putmask(slope, positive, constant(scale, a.dtype))  # ... and λ above it
        grad *= slope  # dL/dz = f'(z) * dL/da
        return grad


class EluParams(Params):
    alpha: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="α of f(z) = α(e^z − 1) for z <= 0: f tends to −α as z → −∞."
    )


class Elu(_ExponentialLinear):
    """f(z) = z if z > 0 else α(e^z − 1); f'(z) = 1 if z > 0 else α·e^z = f(z) + α.

    Smooth for α = 1; otherwise a kink at 0, where f' is the left derivative: f'(0) = α. e^z is only taken of
    min(z, 0), so large z cannot overflow it.
    """

    name: ClassVar[str] = "elu"
    Params: ClassVar[type[Params]] = EluParams
    params: EluParams
    default_init: ClassVar[str] = "he_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.elu(z, out, self.params.alpha, work=self.scratch(z))

    def _alpha_scale(self) -> tuple[float, float]:
        return self.params.alpha, 1.0


class Selu(_ExponentialLinear):
    """f(z) = λ·elu(z, α) = λz if z > 0 else λα(e^z − 1); f'(z) = λ if z > 0 else λα·e^z = f(z) + λα.

    α = 1.6732632423543772848170429916717 and λ = 1.0507009873554804934193349852946, which make a network of
    selu layers initialised with lecun_normal self-normalising (Klambauer et al., 2017). A kink at 0, where f'
    is the left derivative: f'(0) = λα ≈ 1.7581.
    """

    name: ClassVar[str] = "selu"
    default_init: ClassVar[str] = "lecun_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.selu(z, out, work=self.scratch(z))

    def _alpha_scale(self) -> tuple[float, float]:
        return fa.SELU_ALPHA, fa.SELU_SCALE


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_TINY = 1e-20
"""Below this |z|, Φ(z) = 1/2 to float64 precision (Φ(z) − 1/2 ≈ 0.4·z), and above it a = z·Φ(z) is a normal
float even in float32 (1.2e-38 is its smallest), so a/z gives Φ(z) to a few ulp."""


class GeluParams(Params):
    approximate: Literal["none", "tanh"] = Field(
        "none",
        description='"none": the exact z·Φ(z) (with erf); "tanh": the tanh approximation, as PyTorch\'s '
        'approximate="tanh".',
    )


class Gelu(Scratch, Activation):
    """f(z) = z·Φ(z) = z/2·(1 + erf(z/√2)); f'(z) = Φ(z) + z·φ(z), φ(z) = e^(−z²/2)/√(2π).

    With approximate = "tanh" (PyTorch's `approximate="tanh"`): f(z) = z/2·(1 + tanh(u)) with
    u = √(2/π)(z + 0.044715 z³), and f'(z) = (1 + tanh(u))/2 + z/2·(1 − tanh²(u))·√(2/π)(1 + 3·0.044715 z²).
    Smooth, no kink. For very negative z, 1 + erf and 1 + tanh cancel (as in PyTorch): f(z) is then accurate
    to |z|·1e-16 absolutely, not relatively.
    """

    name: ClassVar[str] = "gelu"
    Params: ClassVar[type[Params]] = GeluParams
    params: GeluParams
    default_init: ClassVar[str] = "he_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        if self.params.approximate == "tanh":
            return fa.gelu(z, out, "tanh", work=self.scratch(z))
        return fa.gelu(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        if self.params.approximate == "tanh":
            return self._backward_tanh(z, grad)
        cdf, slope = self.scratches(z, 2)
        # Φ(z) = a/z, since a = z·Φ(z): a division instead of a second erf. On W2's 32 x 64 float32 batch,
        # backward takes 9 µs instead of 19 µs (forward 15 µs, of which erf 14 µs; numpy 2.4, scipy 1.17).
        (nonzero,) = self.masks(z, 1)
        np.abs(z, out=cdf)
        np.greater(cdf, constant(_TINY, z.dtype), out=nonzero)
        cdf.fill(0.5)  # Φ(z) = 1/2 where |z| <= _TINY (z = 0 included) ...
        np.divide(a, z, out=cdf, where=nonzero)  # ... a/z elsewhere
        # z·φ(z) = z·e^(−z²/2)/√(2π)
        np.multiply(z, z, out=slope)
        slope *= constant(-0.5, z.dtype)
        np.exp(slope, out=slope)
        slope *= z
        slope *= constant(_INV_SQRT_2PI, z.dtype)
        slope += cdf  # f'(z) = Φ(z) + z·φ(z)
        grad *= slope
        return grad

    def _backward_tanh(self, z: Array, grad: Array) -> Array:
        x, square, t = self.scratches(z, 3)
        # tanh(u) recomputed as forward does, from z clipped where it saturates: beyond, 1 − tanh²(u) is 0 and
        # the clipped polynomial keeps 0·z³ from becoming inf·0.
        np.clip(z, constant(-fa.GELU_TANH_RANGE, z.dtype), constant(fa.GELU_TANH_RANGE, z.dtype), out=x)
        np.multiply(x, x, out=square)  # x²
        np.multiply(square, constant(fa.GELU_CUBIC, z.dtype), out=t)
        t += self._one
        t *= x
        t *= constant(_SQRT_2_OVER_PI, z.dtype)  # u = √(2/π)(x + 0.044715 x³)
        np.tanh(t, out=t)
        # z·du/dz = z·√(2/π)(1 + 3·0.044715 z²), in `square`
        square *= constant(3 * fa.GELU_CUBIC, z.dtype)
        square += self._one
        square *= constant(_SQRT_2_OVER_PI, z.dtype)
        square *= x
        np.multiply(t, t, out=x)
        np.subtract(self._one, x, out=x)  # 1 − tanh²(u)
        square *= x
        square += t
        square += self._one
        square *= constant(0.5, z.dtype)  # f'(z) = (1 + t + z(1 − t²)·du/dz) / 2
        grad *= square
        return grad


class SoftplusParams(Params):
    beta: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="Sharpness β of f(z) = log(1 + e^(βz))/β: relu as β → ∞."
    )


class Softplus(Scratch, Activation):
    """f(z) = log(1 + e^(βz))/β; f'(z) = σ(βz), computed as 1 − e^(−β·f(z)) (the same number, fewer steps).

    Evaluated as (max(βz, 0) + log1p(e^(−|βz|)))/β, which never overflows and keeps the relative accuracy of
    the left tail, where f(z) ≈ e^(βz)/β. Smooth, no kink.
    """

    name: ClassVar[str] = "softplus"
    Params: ClassVar[type[Params]] = SoftplusParams
    params: SoftplusParams

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.softplus(z, out, self.params.beta, work=self.scratch(z))

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        # e^(−βa) = 1/(1 + e^(βz)) = 1 − σ(βz), so σ(βz) = −expm1(−βa): accurate in both tails, never overflows.
        beta = self.params.beta
        minus_sigma = self.scratch(a)
        if beta == 1.0:
            np.negative(a, out=minus_sigma)
        else:
            np.multiply(a, constant(-beta, a.dtype), out=minus_sigma)
        np.expm1(minus_sigma, out=minus_sigma)  # e^(−βa) − 1 = −σ(βz)
        grad *= minus_sigma
        np.negative(grad, out=grad)  # dL/dz = σ(βz) * dL/da
        return grad


class SiluParams(Params):
    beta: float = Field(1.0, gt=0, allow_inf_nan=False, description="β of f(z) = z·σ(βz) (1: silu; swish's β).")


class Silu(Scratch, Activation):
    """f(z) = z·σ(βz) (β = 1 by default); f'(z) = σ(βz)·(1 + βz·(1 − σ(βz))).

    Also known as swish (Ramachandran et al., 2017), registered under both names. Smooth, no kink.
    """

    name: ClassVar[str] = "silu"
    Params: ClassVar[type[Params]] = SiluParams
    params: SiluParams
    default_init: ClassVar[str] = "he_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.silu(z, out, self.params.beta)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        beta = self.params.beta
        scaled, s, slope = self.scratches(z, 3)
        bz = z if beta == 1.0 else np.multiply(z, constant(beta, z.dtype), out=scaled)  # βz
        sigmoid(bz, out=s)  # σ(βz)
        np.subtract(self._one, s, out=slope)  # 1 − σ(βz)
        slope *= bz
        slope += self._one
        slope *= s  # f'(z) = σ(βz)·(1 + βz·(1 − σ(βz)))
        grad *= slope
        return grad


class Swish(Silu):
    """Alias of silu: f(z) = z·σ(βz); f'(z) = σ(βz)·(1 + βz·(1 − σ(βz)))."""

    name: ClassVar[str] = "swish"


class Mish(Scratch, Activation):
    """f(z) = z·tanh(softplus(z)); f'(z) = tanh(softplus(z)) + z·(1 − tanh²(softplus(z)))·σ(z).

    (d softplus(z)/dz = σ(z).) Smooth, no kink (Misra, 2019).
    """

    name: ClassVar[str] = "mish"
    default_init: ClassVar[str] = "he_normal"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.mish(z, out, work=self.scratch(z))

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        sp, minus_sigma, slope = self.scratches(z, 3)
        fa.softplus(z, sp, work=minus_sigma)  # softplus(z), stable for any z
        np.negative(sp, out=minus_sigma)
        np.expm1(minus_sigma, out=minus_sigma)  # e^(−softplus(z)) − 1 = −σ(z) (see Softplus.backward)
        t = np.tanh(sp, out=sp)
        np.multiply(t, t, out=slope)
        slope -= self._one  # −(1 − t²)
        slope *= minus_sigma  # (1 − t²)·σ(z)
        slope *= z
        slope += t  # f'(z) = t + z·(1 − t²)·σ(z)
        grad *= slope
        return grad


class Exponential(Activation):
    """f(z) = e^z; f'(z) = e^z = f(z).

    Above log of the largest float (88.7 in float32, 709.8 in float64) e^z is inf, its correctly rounded
    value, and so is dL/dz = e^z·dL/da (NaN only where such an output gets dL/da = 0: inf·0). Smooth, no kink.
    """

    name: ClassVar[str] = "exponential"

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return fa.exponential(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        with np.errstate(over="ignore"):  # e^z·dL/da beyond the largest float is inf, as it should be
            grad *= a  # dL/dz = e^z * dL/da
        return grad
