"""Buffers for an activation's intermediate values, kept across batches of the same shape."""

from __future__ import annotations

from typing import Any

import numpy as np

from framework.components import Array
from framework.functional import constant


class Scratch:
    """Buffers for the derivative (and for the forward formulas' `work`) kept across batches of the same shape,
    so that forward and backward allocate nothing (W5's tanh layer: `a * a` on 64 x 64 cost 0.5 µs more per
    step than writing into a kept buffer).

    `scratch(like)` is one float buffer shaped like `like`, `scratches(like, n)` the first n of them (the
    first being `scratch(like)`'s), `masks(like, n)` n boolean ones. A batch of another shape or dtype (the
    last, smaller batch; an evaluation pass) replaces them. Their contents do not survive from one call of
    forward or backward to the next.
    """

    _scratch: tuple[Array, ...] = ()
    _masks: tuple[Array, ...] = ()
    _one: Any = 1.0  # 1 in the scratch's dtype (see `constant`)

    def scratch(self, like: Array) -> Array:
        buffers = self._scratch  # the usual case inline: W1's whole step is 25 µs, a method call 0.1-0.2 µs
        if buffers and buffers[0].shape == like.shape and buffers[0].dtype == like.dtype:
            return buffers[0]
        return self.scratches(like, 1)[0]

    def scratches(self, like: Array, count: int) -> tuple[Array, ...]:
        buffers = self._scratch
        if len(buffers) < count or buffers[0].shape != like.shape or buffers[0].dtype != like.dtype:
            keep = max(count, len(buffers)) if buffers and buffers[0].shape == like.shape else count
            buffers = self._scratch = tuple(np.empty_like(like) for _ in range(keep))
            self._one = constant(1.0, like.dtype)
        return buffers

    def masks(self, like: Array, count: int) -> tuple[Array, ...]:
        masks = self._masks
        if len(masks) < count or masks[0].shape != like.shape:
            keep = max(count, len(masks)) if masks and masks[0].shape == like.shape else count
            masks = self._masks = tuple(np.empty(like.shape, dtype=bool) for _ in range(keep))
        return masks

    def flat(self, z: Array, low: float, high: float) -> Array:
        """The boolean mask z <= low or z > high (a kept buffer): where an activation clipped to [low, high] is
        flat, taking the left derivative at both kinks (as relu'(0) = 0): 0 at `low`, the slope at `high`.

        Backward zeroes dL/da there with `np.putmask`; multiplying by the mask instead would make numpy cast
        the booleans into a buffer of its own on every batch.
        """
        below, above = self.masks(z, 2)
        np.less_equal(z, constant(low, z.dtype), out=below)
        np.greater(z, constant(high, z.dtype), out=above)
        below |= above
        return below
