"""The forward formulas of the built-in activations, f(z), by name.

Each function is `f(z, out=None, **params) -> a`, writing into `out` when given (which may be `z` itself) and
keeping the dtype. The classes in `plugins/activations/` call these for `forward` and hold the derivative;
`ACTIVATIONS` maps each built-in name to its function, for the numpy-only pyfunc loader.

A function that needs room for an intermediate array besides `out` takes `work`: a buffer shaped like `z`,
neither `z` nor `out`, whose contents it overwrites. Without one it allocates it; the classes pass a buffer
they keep, so that a batch allocates nothing, and the arithmetic (hence every bit of the result) is the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .core import Array, constant, sigmoid, softmax
from .special import erf


def _out(z: Array, out: Array | None) -> Array:
    return np.empty_like(z) if out is None else out


def _apart(z: Array, out: Array | None) -> Array:
    """`out`, or a new array if there is none or it overlaps `z`: for formulas that read z after writing."""
    return np.empty_like(z) if out is None or np.may_share_memory(out, z) else out


def _into(result: Array, out: Array | None) -> Array:
    """`result`, copied into `out` when `_apart` had to compute it elsewhere."""
    if out is None or result is out:
        return result
    np.copyto(out, result)
    return out


def _work(z: Array, work: Array | None) -> Array:
    return np.empty_like(z) if work is None else work


def identity(z: Array, out: Array | None = None) -> Array:
    """f(z) = z."""
    if out is None:
        return z.copy()
    np.copyto(out, z)
    return out


def tanh(z: Array, out: Array | None = None) -> Array:
    """f(z) = tanh(z)."""
    return np.tanh(z, out=np.empty_like(z) if out is None else out)  # no helper call: W1's step is 25 µs


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


# Rectifiers ------------------------------------------------------------------------------------------------


def relu6(z: Array, out: Array | None = None) -> Array:
    """f(z) = min(max(z, 0), 6)."""
    result: Array = np.clip(z, constant(0.0, z.dtype), constant(6.0, z.dtype), out=_out(z, out))
    return result


# Saturating ------------------------------------------------------------------------------------------------


def hard_sigmoid(z: Array, out: Array | None = None) -> Array:
    """f(z) = relu6(z + 3) / 6 = clip(z/6 + 1/2, 0, 1), computed as PyTorch's hardsigmoid and Keras 3's."""
    out = np.add(z, constant(3.0, z.dtype), out=_out(z, out))
    np.clip(out, constant(0.0, z.dtype), constant(6.0, z.dtype), out=out)
    result: Array = np.divide(out, constant(6.0, z.dtype), out=out)
    return result


def hard_tanh(z: Array, out: Array | None = None, min_value: float = -1.0, max_value: float = 1.0) -> Array:
    """f(z) = clip(z, min_value, max_value)."""
    result: Array = np.clip(z, constant(min_value, z.dtype), constant(max_value, z.dtype), out=_out(z, out))
    return result


def softsign(z: Array, out: Array | None = None) -> Array:
    """f(z) = z / (1 + |z|)."""
    result = np.abs(z, out=_apart(z, out))
    result += constant(1.0, z.dtype)
    np.divide(z, result, out=result)
    return _into(result, out)


# Smooth ----------------------------------------------------------------------------------------------------


def _exponential_linear(z: Array, out: Array | None, alpha: float, scale: float, work: Array | None) -> Array:
    """λ·(max(z, 0) + α·(e^min(z, 0) − 1)): λz above zero, λα(e^z − 1) at or below it (elu, selu)."""
    # e^z only of min(z, 0): e^z itself would overflow for large z, in the branch that is then thrown away.
    negative = np.minimum(z, constant(0.0, z.dtype), out=_work(z, work))  # read z before `out` (maybe z)
    np.expm1(negative, out=negative)  # e^z − 1, accurate near 0
    negative *= constant(alpha * scale, z.dtype)  # λα(e^z − 1) (0 where z > 0)
    out = np.maximum(z, constant(0.0, z.dtype), out=_out(z, out))
    if scale != 1.0:
        out *= constant(scale, z.dtype)  # λz (0 where z <= 0)
    out += negative
    return out


def elu(z: Array, out: Array | None = None, alpha: float = 1.0, work: Array | None = None) -> Array:
    """f(z) = z for z > 0, α(e^z − 1) otherwise."""
    return _exponential_linear(z, out, alpha, 1.0, work)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
"""selu's α and λ (Klambauer et al. 2017), which keep activations at zero mean and unit variance."""


def selu(z: Array, out: Array | None = None, work: Array | None = None) -> Array:
    """f(z) = λ·elu(z, α) with α = 1.6732632..., λ = 1.0507009...: λz for z > 0, λα(e^z − 1) otherwise."""
    return _exponential_linear(z, out, SELU_ALPHA, SELU_SCALE, work)


GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715
GELU_TANH_RANGE = 10.0
"""|z| beyond which the tanh form is saturated: √(2/π)(10 + 0.044715·10³) = 43.7, and tanh(u) is ±1 to float64
precision from |u| = 19.1 on; clipping z there keeps z³ from overflowing (float32: from |z| = 7e12 on)."""


def gelu(z: Array, out: Array | None = None, approximate: str = "none", work: Array | None = None) -> Array:
    """f(z) = z·Φ(z) = z/2·(1 + erf(z/√2)); with approximate = "tanh", z/2·(1 + tanh(√(2/π)(z + 0.044715 z³))).

    Both as PyTorch computes them (`approximate="none"` and `"tanh"`).
    """
    if approximate == "tanh":
        return _gelu_tanh(z, out, _work(z, work))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be one of {', '.join(GELU_APPROXIMATIONS)}, got {approximate!r}")
    result = np.multiply(z, constant(_SQRT_HALF, z.dtype), out=_apart(z, out))  # z/√2
    erf(result, out=result)
    result += constant(1.0, z.dtype)  # 1 + erf(z/√2) = 2Φ(z)
    result *= z
    result *= constant(0.5, z.dtype)  # z·Φ(z)
    return _into(result, out)


def _gelu_tanh(z: Array, out: Array | None, work: Array) -> Array:
    result = _apart(z, out)
    # z clipped to ±GELU_TANH_RANGE: the same tanh(u), without the overflow of z³
    x = np.clip(z, constant(-GELU_TANH_RANGE, z.dtype), constant(GELU_TANH_RANGE, z.dtype), out=result)
    u = np.multiply(x, x, out=work)
    u *= x  # x³
    u *= constant(GELU_CUBIC, z.dtype)
    u += x  # x + 0.044715 x³
    u *= constant(_SQRT_2_OVER_PI, z.dtype)
    np.tanh(u, out=u)
    u += constant(1.0, z.dtype)
    np.multiply(u, z, out=result)
    result *= constant(0.5, z.dtype)  # z/2·(1 + tanh(u))
    return _into(result, out)


def softplus(z: Array, out: Array | None = None, beta: float = 1.0, work: Array | None = None) -> Array:
    """f(z) = log(1 + e^(βz)) / β, computed as (max(βz, 0) + log1p(e^(−|βz|))) / β, which never overflows."""
    out = _out(z, out)
    scaled = z if beta == 1.0 else np.multiply(z, constant(beta, z.dtype), out=out)  # t = βz
    tail = np.abs(scaled, out=_work(z, work))
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)  # e^(−|t|) in (0, 1]
    np.log1p(tail, out=tail)  # log(1 + e^(−|t|)): log1p keeps it accurate where e^(−|t|) is tiny
    np.maximum(scaled, constant(0.0, z.dtype), out=out)
    out += tail
    if beta != 1.0:
        out /= constant(beta, z.dtype)
    return out


def silu(z: Array, out: Array | None = None, beta: float = 1.0) -> Array:
    """f(z) = z·σ(βz) (silu, also called swish)."""
    result = _apart(z, out)
    scaled = z if beta == 1.0 else np.multiply(z, constant(beta, z.dtype), out=result)
    sigmoid(scaled, out=result)
    result *= z
    return _into(result, out)


def mish(z: Array, out: Array | None = None, work: Array | None = None) -> Array:
    """f(z) = z·tanh(softplus(z))."""
    result = softplus(z, _apart(z, out), work=work)
    np.tanh(result, out=result)
    result *= z
    return _into(result, out)


def exponential(z: Array, out: Array | None = None) -> Array:
    """f(z) = e^z."""
    with np.errstate(over="ignore"):  # e^z above log(max float) is inf, the correctly rounded value
        result: Array = np.exp(z, out=_out(z, out))
    return result


def _softmax(z: Array, out: Array | None = None) -> Array:
    return softmax(z, out=out)


ACTIVATIONS: dict[str, Callable[..., Array]] = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "relu6": relu6,
    "hard_sigmoid": hard_sigmoid,
    "hard_tanh": hard_tanh,
    "softsign": softsign,
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "softplus": softplus,
    "silu": silu,
    "swish": silu,
    "mish": mish,
    "exponential": exponential,
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
