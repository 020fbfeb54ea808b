"""softmax as a hidden activation: each row of a batch mapped to a probability vector."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from framework import functional as F
from framework.components import Activation, AnyParams, Array


class Softmax(Activation):
    """f(z)_j = e^(z_j) / Σ_k e^(z_k) over the units of each row; ∂f_j/∂z_i = f_j·([i = j] − f_i).

    Not element-wise: backward is the vector-Jacobian product of each row, dL/dz = a ⊙ (g − Σ_j g_j·a_j)
    with g = dL/da. Forward subtracts each row's maximum first (`framework.functional.softmax`), so e^x never
    overflows; a row's outputs sum to 1 and do not change when a constant is added to the row. Smooth.

    For the output layer of a classifier, use the identity activation with the cross_entropy loss, which
    fuses its own softmax (stable, and a simpler gradient).
    """

    name: ClassVar[str] = "softmax"
    elementwise: ClassVar[bool] = False

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._product: Array | None = None  # g ⊙ a, shaped like the batch
        self._dots: Array | None = None  # Σ_j g_j·a_j of each row, a column (n, 1)
        self._ones: Array | None = None  # (units,) ones: the row sums as a matrix-vector product

    def forward(self, z: Array, out: Array | None = None) -> Array:
        return F.softmax(z, out)

    def backward(self, z: Array, a: Array, grad: Array) -> Array:
        product, dots, ones = self._buffers(a)
        np.multiply(grad, a, out=product)  # g_j·a_j
        np.matmul(product, ones, out=dots[:, 0])  # Σ_j g_j·a_j per row (faster than sum(axis=1))
        grad -= dots  # g − Σ_j g_j·a_j, broadcast along the row
        grad *= a  # dL/dz = a ⊙ (g − Σ_j g_j·a_j)
        return grad

    def _buffers(self, a: Array) -> tuple[Array, Array, Array]:
        product, dots, ones = self._product, self._dots, self._ones
        if product is None or dots is None or ones is None or product.shape != a.shape or product.dtype != a.dtype:
            product = self._product = np.empty_like(a)
            dots = self._dots = np.empty((a.shape[0], 1), dtype=a.dtype)
            ones = self._ones = np.ones(a.shape[1], dtype=a.dtype)
        return product, dots, ones
