"""A buffer for an activation's derivative, kept across batches of the same shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from framework.components import Array
from framework.functional import constant


class Scratch:
    """A buffer for the derivative kept across batches of the same shape, so that backward allocates nothing
    (W5's tanh layer: `a * a` on 64 x 64 cost 0.5 µs more per step than writing into a kept buffer)."""

    _scratch: Array | None = None
    _one: Any = 1.0  # 1 in the scratch's dtype (see `constant`)

    def scratch(self, like: Array) -> Array:
        buf = self._scratch
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = self._scratch = np.empty_like(like)
            self._one = constant(1.0, like.dtype)
        return buf
