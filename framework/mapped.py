"""Features left in a memory-mapped file (issue 21): rows gathered, cast and standardised per minibatch.

`MappedRows` stands where the trainer expects a split's feature matrix: `len`, `shape`, `take(perm, axis=0)`
(a new view through the permuted index, nothing read) and indexing (the rows read from the map, then
x' = (x - mean) / scale in the experiment's dtype). Row for row these are the values the in-memory split holds,
so a mapped run trains bitwise like an in-memory one on the same data.

`streamed_standardizer` computes the training split's mean and standard deviation in chunks of rows, with the
same float arithmetic as `Standardizer.fit` on the gathered split: numpy reduces a (rows, k > 1) matrix over
its rows by sequential addition, so carrying the running sum as the first row of the next chunk gives the same
bits; one column (k = 1) is reduced pairwise by numpy, so it is gathered whole (4-8 bytes a row) instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from framework.components import Array
from framework.model import Standardizer

CHUNK_ROWS = 1 << 16


class MappedRows:
    """Rows `index` of the mapped matrix `source`, as `dtype`, standardised by `scaler` when given."""

    ndim = 2

    def __init__(self, source: Any, index: Array, dtype: np.dtype[Any], scaler: Standardizer | None = None) -> None:
        self.source, self.index, self.dtype, self.scaler = source, np.asarray(index, dtype=np.intp), dtype, scaler

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.index), int(self.source.shape[1]))

    def __len__(self) -> int:
        return len(self.index)

    def take(self, positions: Array, axis: int = 0) -> MappedRows:
        assert axis == 0, "rows only"
        return MappedRows(self.source, self.index[positions], self.dtype, self.scaler)

    def raw(self, key: Any) -> Array:
        """The rows at `key` (a slice, an index array or an int) read from the map, cast, not standardised."""
        rows = self.index[key]
        return np.asarray(self.source[rows], dtype=self.dtype)

    def __getitem__(self, key: Any) -> Array:
        rows = self.raw(key)
        return self.scaler.transform(rows) if self.scaler is not None else rows

    def chunks(self, size: int = CHUNK_ROWS) -> Iterator[Array]:
        """The rows in order, `size` at a time, as the split's feature matrix holds them."""
        for start in range(0, len(self), size):
            yield np.ascontiguousarray(self[start : start + size])

    def __array__(self, dtype: Any = None, copy: Any = None) -> Array:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


def streamed_standardizer(rows: MappedRows) -> Standardizer:
    """mean = sum(x) / n, scale = sqrt(sum((x - mean)^2) / n) over the split's raw rows, two streaming passes."""
    if rows.shape[1] == 1:
        return Standardizer.fit(rows.raw(slice(None)))
    n = len(rows)
    total = np.zeros((1, rows.shape[1]), dtype=rows.dtype)
    for start in range(0, n, CHUNK_ROWS):
        total = np.add.reduce(
            np.concatenate([total, rows.raw(slice(start, start + CHUNK_ROWS))]), axis=0, keepdims=True
        )
    mean = np.true_divide(total, n)
    squares = np.zeros_like(total)
    for start in range(0, n, CHUNK_ROWS):
        centred = rows.raw(slice(start, start + CHUNK_ROWS)) - mean
        squares = np.add.reduce(np.concatenate([squares, centred * centred]), axis=0, keepdims=True)
    scale = np.sqrt(np.true_divide(squares, n))[0]
    scale[scale == 0] = 1.0  # as Standardizer.fit: a constant feature is centred, not divided by zero
    return Standardizer(mean[0], scale)
