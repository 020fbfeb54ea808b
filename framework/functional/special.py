"""Special functions that numpy lacks: the error function erf, for the exact gelu.

`erf(x, out=None)` uses `scipy.special.erf` when scipy can be imported, and otherwise `erf_fdlibm`, a
vectorised numpy port of fdlibm's `s_erf.c` (Sun Microsystems, 1993: the algorithm glibc's `erf` uses, so
`math.erf` too). scipy is imported at the first call, never when this module is imported: importing it costs
a noticeable fraction of a second that a run without gelu must not pay, and a model shipped with numpy alone
must load where scipy is missing. Both agree with `math.erf` to within a couple of ulp (tests/plugins).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .core import Array

# The coefficients of fdlibm's s_erf.c (double precision), in the order of its Horner schemes. The file's
# notice: "Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved. Developed at SunPro, a Sun
# Microsystems, Inc. business. Permission to use, copy, modify, and distribute this software is freely
# granted, provided that this notice is preserved."
_EFX = 1.28379167095512586316e-01  # 2/√π - 1, for |x| < 2⁻²⁸ where erf(x) = x + efx·x to the last bit
_ERX = 8.45062911510467529297e-01  # erf(1) rounded to 24 bits: the centre of the second interval
# erf(x) = x + x·P(x²)/Q(x²) on [0, 0.84375]
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)  # fmt: skip
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)  # fmt: skip
# erf(x) = erx + P(s)/Q(s), s = |x| - 1, on [0.84375, 1.25]
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)  # fmt: skip
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)  # fmt: skip
# erfc(x) = e^(-x² - 0.5625 + R(s)/S(s)) / x, s = 1/x², on [1.25, 1/0.35] ...
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e01,
       -6.23753324503260060396e01, -1.62396669462573470355e02, -1.84605092906711035994e02,
       -8.12874355063065934246e01, -9.81432934416914548592e00)  # fmt: skip
_SA = (1.0, 1.96512716674392571292e01, 1.37657754143519042600e02, 4.34565877475229228821e02,
       6.45387271733267880336e02, 4.29008140027567833386e02, 1.08635005541779435134e02,
       6.57024977031928170135e00, -6.04244152148580987438e-02)  # fmt: skip
# ... and on [1/0.35, 6] (beyond 6, erf(x) is 1 to double precision)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e01,
       -1.60636384855821916062e02, -6.37566443368389627722e02, -1.02509513161107724954e03,
       -4.83519191608651397019e02)  # fmt: skip
_SB = (1.0, 3.03380607434824582924e01, 3.25792512996573918826e02, 1.53672958608443695994e03,
       3.19985821950859553908e03, 2.55305040643316442583e03, 4.74528541206955367215e02,
       -2.24409524465858183362e01)  # fmt: skip

# fdlibm picks the interval from the high 32 bits of |x|; these are the doubles those bit patterns start at.
_TINY = 2.0**-28  # 0x3e300000
_SMALL = 0.84375  # 0x3feb0000
_MIDDLE = 1.25  # 0x3ff40000
_TAIL = float.fromhex("0x1.6db6ep+1")  # 0x4006db6e: 2.857141..., just below 1/0.35
_ONE = 6.0  # 0x40180000
_HIGH_WORD = np.uint64(0xFFFFFFFF00000000)


def _horner(t: Array, coefficients: tuple[float, ...]) -> Array:
    """c₀ + t·(c₁ + t·(c₂ + ...)), as fdlibm evaluates its polynomials."""
    result = np.full_like(t, coefficients[-1])
    for c in coefficients[-2::-1]:
        result *= t
        result += c
    return result


def _erfc_tail(ax: Array, r: tuple[float, ...], s: tuple[float, ...]) -> Array:
    """erfc(x) for x = `ax` >= 1.25: e^(-x² - 0.5625 + R/S) / x, with R and S polynomials in 1/x²."""
    inverse_square = 1.0 / (ax * ax)
    ratio = _horner(inverse_square, r) / _horner(inverse_square, s)
    # x² = z² - (z - x)(z + x) with z = x rounded to its high 32 bits: z² is exact, so e^(-x²) keeps the
    # accuracy that rounding x² itself would lose (fdlibm's Note1).
    z = (ax.view(np.uint64) & _HIGH_WORD).view(np.float64)
    result: Array = np.exp(-z * z - 0.5625) * np.exp((z - ax) * (z + ax) + ratio) / ax
    return result


def erf_fdlibm(x: Array, out: Array | None = None) -> Array:
    """erf(x) = 2/√π ∫₀ˣ e^(-t²) dt element-wise, by fdlibm's rational approximations (error < 1 ulp).

    Computed in float64 and rounded to the dtype of `x` (float32 stays float32); `out` may be `x` itself.
    Five intervals of |x| (fdlibm's s_erf.c): x + x·P/Q below 0.84375; erf(1) + P/Q(|x| - 1) up to 1.25;
    1 - erfc(|x|) from asymptotic rational forms up to 6; ±1 beyond; NaN stays NaN.
    """
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    v = x.astype(np.float64)  # a copy: every region below is computed on the elements that fall in it
    ax = np.abs(v)
    result = v.copy()  # NaN stays NaN (it falls in no interval)

    small = ax < _SMALL
    if small.any():  # x + x·P(x²)/Q(x²): the sign of x (and of -0) carries through
        xs = v[small]
        square = xs * xs
        y = _horner(square, _PP) / _horner(square, _QQ)
        y[ax[small] < _TINY] = _EFX  # x² underflows, and P/Q(0) = pp0 is one bit off 2/√π - 1
        result[small] = xs + xs * y
    middle = (ax >= _SMALL) & (ax < _MIDDLE)
    if middle.any():
        s = ax[middle] - 1.0
        result[middle] = _ERX + _horner(s, _PA) / _horner(s, _QA)
    near = (ax >= _MIDDLE) & (ax < _TAIL)
    if near.any():
        result[near] = 1.0 - _erfc_tail(ax[near], _RA, _SA)
    far = (ax >= _TAIL) & (ax < _ONE)
    if far.any():
        result[far] = 1.0 - _erfc_tail(ax[far], _RB, _SB)
    result[ax >= _ONE] = 1.0  # fdlibm's 1 - tiny, which rounds to 1 (and erf(inf) = 1)
    # The regions from 0.84375 up computed erf(|x|); erf is odd (the first region has the sign already).
    np.copysign(result, v, out=result)
    if out is None:
        return result.astype(dtype, copy=False)
    np.copyto(out, result, casting="same_kind")
    return out


_implementation: Callable[[Array, Array | None], Array] | None = None


def _scipy_or_fdlibm() -> Callable[[Array, Array | None], Array]:
    global _implementation
    try:
        # Imported here, at the first call (see the module docstring).
        from scipy.special import erf as scipy_erf
    except ImportError:
        _implementation = erf_fdlibm
    else:

        def erf_scipy(x: Array, out: Array | None = None) -> Array:
            result: Array = scipy_erf(x) if out is None else scipy_erf(x, out=out)
            return result

        _implementation = erf_scipy
    return _implementation


def erf(x: Array, out: Array | None = None) -> Array:
    """erf(x) element-wise, keeping the dtype: scipy's when scipy is installed, else `erf_fdlibm`.

    `out` (shaped like `x`, which it may be) receives the result when given.
    """
    implementation = _implementation or _scipy_or_fdlibm()
    return implementation(x, out)


def erf_backend() -> str:
    """Which implementation `erf` uses ("scipy" or "fdlibm"), choosing it now if no call has yet."""
    implementation = _implementation or _scipy_or_fdlibm()
    return "fdlibm" if implementation is erf_fdlibm else "scipy"


def _reset() -> None:
    """Forget the chosen implementation (for tests that hide scipy); the next call chooses again."""
    global _implementation
    _implementation = None
