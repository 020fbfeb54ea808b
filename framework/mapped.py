"""Features left in a memory-mapped file (issue 21): rows gathered, cast and standardised per minibatch.

`MappedRows` stands where the trainer expects a split's feature matrix: `len`, `shape`, `take(perm, axis=0)`
(a new view through the permuted index, nothing read) and indexing (the rows read from the map, then
x' = (x - mean) / scale in the experiment's dtype). Row for row these are the values the in-memory split holds,
so a mapped run trains bitwise like an in-memory one on the same data.

The mapped matrix is a `RowSource`: rows gathered by index from a file left where it is (`NpyRows`: an `.npy`
file's feature columns; a plugin's mapped Arrow columns; shards as one table through `Stacked`), or an
`np.memmap`.

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


class RowSource:
    """A (rows, columns) matrix left where it is: `source[rows]` gathers the rows at an index array (or a slice)
    into a new array of `dtype`. Subclasses set `shape` and `dtype` and implement `gather`."""

    ndim = 2
    shape: tuple[int, int]
    dtype: np.dtype[Any]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> Array:
        rows = np.arange(*key.indices(self.shape[0])) if isinstance(key, slice) else np.asarray(key, dtype=np.intp)
        return self.gather(rows)

    def gather(self, rows: Array) -> Array:
        raise NotImplementedError


class NpyRows(RowSource):
    """The first `columns` columns of a memory-mapped matrix (an `.npy` file whose last column is the target).

    Whole rows are gathered from the map with `take` and the target's column dropped after: numpy's `take` on
    the contiguous map gathers 256 rows in about 10 µs, where indexing the strided feature columns takes 30-50
    (and `take` on them, tens of milliseconds: numpy 2.4)."""

    def __init__(self, matrix: Any, columns: int) -> None:
        self.matrix: Array = matrix.view(np.ndarray)  # the same map, without np.memmap's per-index bookkeeping
        self.shape = (int(matrix.shape[0]), columns)
        self.dtype = matrix.dtype

    def gather(self, rows: Array) -> Array:
        return self.matrix.take(rows, axis=0)[:, : self.shape[1]]


class Stacked(RowSource):
    """Mapped matrices (shards) one after the other as one: row r of the whole is row r - offset of its shard."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts
        self.offsets = np.cumsum([0, *(len(part) for part in parts)])
        self.shape = (int(self.offsets[-1]), int(parts[0].shape[1]))
        self.dtype = np.result_type(*(part.dtype for part in parts))

    def gather(self, rows: Array) -> Array:
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        for part in np.unique(which):  # one fancy index per shard the rows fall in
            mine = which == part
            out[mine] = self.parts[part][rows[mine] - self.offsets[part]]
        return out


def is_mapped(X: Any) -> bool:
    """Are these features left in their file (a memory map or a `RowSource`), to be gathered per minibatch?"""
    return isinstance(X, np.memmap | RowSource)


def index_dtype(n: int) -> np.dtype[Any]:
    """The integer type of row indices among `n` rows: int32 when they fit (half the memory of int64)."""
    return np.dtype(np.int32 if n < 2**31 else np.intp)


class MappedRows:
    """Rows `index` of the mapped matrix `source` (every row, in order, for None: no index array held), as
    `dtype`, standardised by `scaler` when given. `take(positions)` makes the index `index[positions]` (or
    `positions` itself), in its integer type: int32 indices cost 4 bytes a row."""

    ndim = 2

    def __init__(
        self, source: Any, index: Array | None, dtype: np.dtype[Any], scaler: Standardizer | None = None
    ) -> None:
        if index is not None:
            index = np.asarray(index)
            if index.dtype.kind not in "iu":  # (an empty list is float64)
                index = index.astype(np.intp)
        self.source, self.index, self.dtype, self.scaler = source, index, dtype, scaler

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), int(self.source.shape[1]))

    def __len__(self) -> int:
        return len(self.source) if self.index is None else len(self.index)

    def take(self, positions: Array, axis: int = 0) -> MappedRows:
        assert axis == 0, "rows only"
        index = positions if self.index is None else self.index[positions]
        return MappedRows(self.source, index, self.dtype, self.scaler)

    def raw(self, key: Any) -> Array:
        """The rows at `key` (a slice, an index array or an int) read from the map, cast, not standardised."""
        if self.index is not None:
            rows = self.index[key]
        elif isinstance(key, slice) and isinstance(self.source, np.memmap):
            return np.array(self.source[key], dtype=self.dtype)  # a copy: not a view of the (read-only) map
        else:
            rows = key + len(self) if isinstance(key, int | np.integer) and key < 0 else key
        return np.asarray(self.source[rows], dtype=self.dtype)

    def __getitem__(self, key: Any) -> Array:
        rows = self.raw(key)
        if self.scaler is None:
            return rows
        mean, scale = self.scaler.mean, self.scaler.scale
        if not mean.dtype == scale.dtype == rows.dtype:
            return self.scaler.transform(rows)
        centred = np.subtract(rows, mean)  # Standardizer.transform's operations, the second in place: same bits
        return np.divide(centred, scale, out=centred)

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
