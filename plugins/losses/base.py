"""What the built-in losses share: buffers reused across batches, a shape check, and target helpers.

`gradient()` runs once per batch, so it writes into a buffer kept on the loss for each (shape, dtype); the
returned array is overwritten by the next `gradient()` call of the same shape (the caller may modify it in
place, as the model's backward pass does). `value()` never touches that buffer. A gradient that needs
intermediate arrays (focal, the weighted cross entropies) takes them from `_scratch`, kept the same way.
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
        self._work: dict[tuple[tuple[int, ...], np.dtype[Any]], list[Array]] = {}
        self._ones_by: dict[tuple[int, np.dtype[Any]], Array] = {}

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

    def _scratch(self, shape: tuple[int, ...], dtype: np.dtype[Any], count: int) -> list[Array]:
        """`count` work arrays of `shape` and `dtype`, kept across batches (never the gradient buffer).

        Their contents are garbage on entry; the same arrays come back on the next call with that shape.
        """
        key = (shape, dtype)
        found = self._work.get(key)
        if found is None or len(found) < count:
            if len(self._work) > 16:  # as `_buffer`: odd evaluation sizes must not grow memory without bound
                self._work.clear()
            found = self._work[key] = [np.empty(shape, dtype=dtype) for _ in range(count)]
        return found

    def _ones(self, k: int, dtype: np.dtype[Any]) -> Array:
        """A read-only vector of k ones: `rows @ ones` sums each row into a kept buffer (`np.matmul(..., out=)`)."""
        ones = self._ones_by.get((k, dtype))
        if ones is None:
            ones = self._ones_by[(k, dtype)] = np.ones(k, dtype=dtype)
            ones.flags.writeable = False
        return ones


def check_shapes(loss: Loss, outputs: Array, targets: Array) -> None:
    # Broadcasting (n, k) against (n, 1) would give a wrong loss silently.
    if outputs.shape != targets.shape:
        raise ValueError(
            f"{loss.name}: outputs {outputs.shape} and targets {targets.shape} differ in shape; "
            "help: targets must come from the loss's prepare_targets()"
        )


def first_bad_row(bad: Array) -> tuple[int, str]:
    """The first True row of a boolean mask (at least one is True), and ' (and N more rows)' or ''."""
    rows = np.flatnonzero(bad)
    more = len(rows) - 1
    return int(rows[0]), (f" (and {more} more row{'s' if more != 1 else ''})" if more else "")


def one_hot(name: str, y: Array, n_outputs: int, dtype: np.dtype[Any]) -> Array:
    """One-hot rows (n, n_outputs) from integer class labels of shape (n,) or (n, 1), for the loss `name`."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or np.any(labels != np.round(labels)):
        raise ValueError(f"{name}: targets must be integer class labels of shape (n,), got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_outputs):
        raise ValueError(
            f"{name}: labels must lie in 0..{n_outputs - 1} for {n_outputs} outputs, found "
            f"{labels.min():g}..{labels.max():g}; help: the last layer needs one unit per class"
        )
    targets = np.zeros((len(labels), n_outputs), dtype=dtype)
    targets[np.arange(len(labels)), labels.astype(np.intp)] = 1
    return targets


def binary_column(
    name: str, y: Array, dtype: np.dtype[Any], fix: str = "for more than two classes use cross_entropy"
) -> Array:
    """One column (n, 1) of labels in [0, 1] (0/1, or soft labels), for the loss `name`."""
    targets = np.asarray(y, dtype=dtype)
    targets = targets.reshape(len(targets), -1)
    if targets.shape[1] != 1 or np.any((targets < 0) | (targets > 1)):
        raise ValueError(f"{name}: targets must be one column of labels in [0, 1]; help: {fix}")
    return targets
