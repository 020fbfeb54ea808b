"""The dropout layer: inverted dropout, active in training only.

In training, each input element is kept with probability 1 - rate and scaled by 1/(1 - rate), so the
expected output equals the input and inference needs no rescaling:

    mask = (u >= rate) / (1 - rate),  u ~ Uniform[0, 1)      (n, width)   drawn per batch
    y = x * mask                                              forward (training); y = x at inference
    dL/dx = dL/dy * mask                                      backward

The randomness comes from the run's seed: `build(input_dim, dtype, rng)` spawns the layer's own generator
from the model's initialisation generator (`Generator.spawn`, which draws nothing from it, so adding a
dropout layer does not change the other layers' initial weights). That generator's state is the layer's
`state_dict()`, saved in checkpoints, so a resumed run draws the same masks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import AnyParams, Array, Layer, Params


class DropoutParams(Params):
    rate: float = Field(0.5, ge=0, lt=1, description="Fraction of the inputs set to zero in training.")


class Dropout(Layer):
    """Inverted dropout: y = x · mask / (1 - rate) in training, mask ~ Bernoulli(1 - rate); y = x at inference."""

    name: ClassVar[str] = "dropout"
    Params: ClassVar[type[Params]] = DropoutParams
    params: DropoutParams

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.rng = np.random.default_rng(0)
        self.width = 0
        self.dtype: np.dtype[Any] = np.dtype(np.float64)
        self._buffers: dict[int, tuple[Array, Array, Array, Array]] = {}
        self._mask: Array | None = None

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        self.rng = rng.spawn(1)[0]
        self.width = input_dim
        self.dtype = np.dtype(dtype)
        self._buffers.clear()
        return input_dim

    def _buffers_for(self, n: int) -> tuple[Array, Array, Array, Array]:
        bufs = self._buffers.get(n)
        if bufs is None:
            dtype = self.dtype
            shape = (n, self.width)
            bufs = (np.empty(shape, dtype), np.empty(shape, bool), np.empty(shape, dtype), np.empty(shape, dtype))
            if len(self._buffers) > 4:
                self._buffers.clear()
            self._buffers[n] = bufs
        return bufs

    def forward(self, x: Array, training: bool) -> Array:
        if not training or self.params.rate == 0:
            self._mask = None
            return x
        u, keep, mask, out = self._buffers_for(x.shape[0])
        self.rng.random(dtype=u.dtype, out=u)  # u ~ Uniform[0, 1)
        np.greater_equal(u, self.params.rate, out=keep)  # kept with probability 1 - rate
        np.multiply(keep, 1 / (1 - self.params.rate), out=mask)  # inverted: scaled by 1/(1 - rate)
        self._mask = mask
        return self.apply(x, mask, out)

    @staticmethod
    def apply(x: Array, mask: Array, out: Array | None = None) -> Array:
        """y = x * mask (the forward pass for a given mask)."""
        return np.multiply(x, mask, out=out)

    def backward(self, grad: Array) -> Array | None:
        if not self.needs_input_grad:
            return None
        if self._mask is None:  # rate 0: the identity
            return grad
        grad *= self._mask  # dL/dx = dL/dy * mask (the caller owns `grad`)
        return grad

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
