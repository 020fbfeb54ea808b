"""An uncompressed Arrow IPC (Feather) file memory-mapped, its feature columns left in the map (issue 21).

`map_columns` opens the file as one memory map and reads its record batches without copying: each column chunk's
values are then a stretch of the map. `ArrowColumns` gathers minibatch rows from there: one numpy view of the
whole map per column type, and for row r of record batch b the value at element
`start[column][b] + (r - first_row[b])`, so a minibatch is one fancy index per column whatever the number of
batches. Rows come out as float64 (as `plugins.columnar_datasets.fill_columns` casts them on the way to the
experiment's dtype), or float32 when every column is float32 (the same bits either way).

A file whose buffers are not in the map cannot be left there: compressed (Feather's default is lz4), boolean
(bit-packed) or with missing values. `Unmappable` says why, so `in_memory = "auto"` reads such a file instead
and `in_memory = false` names the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from framework.components import Array
from framework.mapped import RowSource


class Unmappable(Exception):
    """The file's feature columns cannot stay in the map; the message says why and what to do."""


class ArrowColumns(RowSource):
    """Feature columns of a memory-mapped Arrow table, as a (rows, columns) matrix gathered per minibatch."""

    def __init__(self, table: Any, names: list[str], whole: Any, path: Path) -> None:
        import pyarrow as pa

        base, end = whole.address, whole.address + whole.size
        chunks = [table.column(name).chunks for name in names]
        self.first_row = np.cumsum([0, *(len(chunk) for chunk in chunks[0])])
        self.views: list[Array] = []
        self.starts: list[Array] = []
        for name, column in zip(names, chunks, strict=True):
            kind = column[0].type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                raise Unmappable(
                    f"{path}: column {name!r} is of type {kind}, which Arrow does not store as plain values"
                )
            dtype = np.dtype(kind.to_pandas_dtype())
            starts = []
            for b, chunk in enumerate(column):
                if chunk.null_count:
                    row = int(self.first_row[b]) + int(
                        np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))[0]
                    )
                    raise Unmappable(f"{path}: feature {name!r} has missing values (first at row {row})")
                data = chunk.buffers()[1]
                if not base <= data.address < end or (data.address - base) % dtype.itemsize:
                    raise Unmappable(f"{path}: column {name!r} is not stored plainly in the file (compressed?)")
                starts.append((data.address - base) // dtype.itemsize + chunk.offset)
            self.views.append(np.frombuffer(whole, dtype=dtype, count=whole.size // dtype.itemsize))
            self.starts.append(np.asarray(starts, dtype=np.intp))
        single = all(view.dtype == np.float32 for view in self.views)
        self.dtype = np.dtype(np.float32 if single else np.float64)
        self.shape = (int(self.first_row[-1]), len(names))
        self.whole = whole  # the map stays open while the views are used

    def gather(self, rows: Array) -> Array:
        batch = np.searchsorted(self.first_row, rows, side="right") - 1
        local = rows - self.first_row[batch]
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        for j, (view, starts) in enumerate(zip(self.views, self.starts, strict=True)):
            out[:, j] = view[starts[batch] + local]
        return out


def map_columns(path: Path, features: list[str]) -> tuple[ArrowColumns, Any]:
    """The file's feature columns left in its memory map, and the table (to read the target from)."""
    import pyarrow as pa

    whole = pa.memory_map(str(path), "r").read_buffer()
    try:
        table = pa.ipc.open_file(whole).read_all()
    except pa.ArrowInvalid as exc:
        raise Unmappable(f"{path}: not an Arrow IPC file ({exc})") from None
    if table.num_rows == 0:
        raise Unmappable(f"{path}: no data rows")
    return ArrowColumns(table, features, whole, path), table
