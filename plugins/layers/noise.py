"""The gaussian_noise layer: additive zero-mean Gaussian noise, active in training only (a regulariser).

    y = x + σ·ε,  ε ~ N(0, 1)      (n, width)   drawn per batch, in training
    y = x                                        at inference
    dL/dx = dL/dy                                the noise does not depend on x

The randomness comes from the run's seed as dropout's does: `build` spawns the layer's own generator from the
model's initialisation generator (`Generator.spawn` draws nothing from it, so the other layers' initial
weights do not change), and that generator's state is the layer's `state_dict()`, saved in checkpoints, so a
resumed run draws the same noise.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from framework.components import AnyParams, Array, Layer, Params
from framework.functional import constant


class GaussianNoiseParams(Params):
    stddev: float = Field(0.1, ge=0, description="Standard deviation σ of the noise added in training (0: off).")


class GaussianNoise(Layer):
    """Additive Gaussian noise: y = x + σ·ε, ε ~ N(0, 1), in training; y = x at inference; dL/dx = dL/dy."""

    name: ClassVar[str] = "gaussian_noise"
    Params: ClassVar[type[Params]] = GaussianNoiseParams
    params: GaussianNoiseParams

    def __init__(self, params: AnyParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.rng = np.random.default_rng(0)
        self.width = 0
        self.dtype: np.dtype[Any] = np.dtype(np.float64)
        self._stddev: Any = 0.0
        self._buffers: dict[int, tuple[Array, Array]] = {}

    def build(self, input_dim: int, dtype: np.dtype[Any], rng: np.random.Generator) -> int:
        self.rng = rng.spawn(1)[0]
        self.width = input_dim
        self.dtype = np.dtype(dtype)
        self._stddev = constant(self.params.stddev, self.dtype)
        self._buffers.clear()
        return input_dim

    def _buffers_for(self, n: int) -> tuple[Array, Array]:
        bufs = self._buffers.get(n)
        if bufs is None:
            shape = (n, self.width)
            bufs = (np.empty(shape, self.dtype), np.empty(shape, self.dtype))
            if len(self._buffers) > 4:
                self._buffers.clear()
            self._buffers[n] = bufs
        return bufs

    def forward(self, x: Array, training: bool) -> Array:
        if not training or self.params.stddev == 0:
            return x
        noise, out = self._buffers_for(x.shape[0])
        self.rng.standard_normal(dtype=noise.dtype, out=noise)  # ε ~ N(0, 1), drawn in the layer's dtype
        noise *= self._stddev  # σ·ε
        return np.add(x, noise, out=out)  # y = x + σ·ε

    def backward(self, grad: Array) -> Array | None:
        if not self.needs_input_grad:
            return None
        return grad  # dL/dx = dL/dy

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
