"""The inference formulas of the normalisation layers, in numpy alone.

`plugins/layers/normalization.py` calls these for its evaluation forward pass and the numpy-only pyfunc
loader calls them for a saved model, so the two agree bit for bit. Both keep the input's dtype and write into
`out` when it is given (an array shaped like `x`, which may be `x` itself).
"""

from __future__ import annotations

import numpy as np

from .core import Array, constant, row_sum


def batch_norm(
    x: Array,
    mean: Array,
    var: Array,
    gamma: Array | None,
    beta: Array | None,
    eps: float,
    out: Array | None = None,
) -> Array:
    """y = γ·(x − μ)/√(σ² + ε) + β with fixed statistics μ, σ² per feature (batch_norm at inference).

    `mean` and `var` are the running statistics, shape (features,); `gamma`/`beta` are None for a layer
    without the affine map (γ = 1, β = 0).
    """
    out = np.subtract(x, mean, out=out)  # x − μ
    out /= np.sqrt(var + constant(eps, var.dtype))  # / √(σ² + ε): one vector of the width per call
    if gamma is not None:
        out *= gamma
    if beta is not None:
        out += beta
    return out


def layer_norm(
    x: Array,
    gamma: Array | None,
    beta: Array | None,
    eps: float,
    out: Array | None = None,
) -> Array:
    """y = γ·(x − μ_row)/√(σ²_row + ε) + β: each row normalised over its features (layer_norm).

    μ_row is the mean of the row, σ²_row its biased variance (the mean of (x − μ_row)²), computed in two passes
    (no cancellation in E[x²] − E[x]²). `gamma`/`beta` (features,) are None without the affine map.
    """
    inv_width = constant(1.0 / x.shape[1], x.dtype)
    mean = row_sum(x) * inv_width  # μ_row, (n, 1)
    out = np.subtract(x, mean, out=out)  # x − μ_row
    var = row_sum(out * out) * inv_width  # σ²_row, (n, 1)
    out /= np.sqrt(var + constant(eps, x.dtype))
    if gamma is not None:
        out *= gamma
    if beta is not None:
        out += beta
    return out
