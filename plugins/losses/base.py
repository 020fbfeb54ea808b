"""What the built-in losses share: a gradient buffer reused across batches, and a shape check.

`gradient()` runs once per batch, so it writes into a buffer kept on the loss for each (shape, dtype); the
returned array is overwritten by the next `gradient()` call of the same shape (the caller may modify it in
place, as the model's backward pass does). `value()` never touches that buffer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from framework.components import Array, Loss, Params


class BufferedLoss(Loss):
    """A loss whose gradient is written into a buffer reused across batches of the same shape."""

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._buffers: dict[tuple[tuple[int, ...], np.dtype[Any]], Array] = {}
        self._last: Array | None = None

    def _buffer(self, like: Array) -> Array:
        last = self._last
        if last is not None and last.shape == like.shape and last.dtype == like.dtype:
            return last  # once per batch: skip the dict for the common case of a repeated batch shape
        key = (like.shape, like.dtype)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 8:  # evaluation on odd sizes must not grow memory without bound
                self._buffers.clear()
            buf = self._buffers[key] = np.empty_like(like)
        self._last = buf
        return buf


def check_shapes(loss: Loss, outputs: Array, targets: Array) -> None:
    # Broadcasting (n, k) against (n, 1) would give a wrong loss silently.
    if outputs.shape != targets.shape:
        raise ValueError(
            f"{loss.name}: outputs {outputs.shape} and targets {targets.shape} differ in shape; "
            "help: targets must come from the loss's prepare_targets()"
        )
