"""Typed column files read through Arrow (issue 21): `parquet` and `feather` (Arrow IPC) datasets.

Only the chosen columns are read (`features`, default every column but the target). The columns keep their
types, so the target's type decides the task with `task = "auto"`: floating point is regression; integers,
booleans and text are class labels (encoded 0..k-1 in the order of `classes`, else sorted). Feature columns must
be numeric (integers and booleans are read as numbers); a missing value is refused before training, naming the
column. `path` may be one file, a folder or a glob: the files of one format are read in name order as one table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from framework import DataBundle, Dataset, Params
from framework.errors import DataError
from plugins.tables import check_column, resolve_paths

TaskChoice = Literal["auto", "regression", "binary", "multiclass"]


class ColumnarParams(Params):
    path: str = Field(description="A file, a folder or a glob (relative to the experiment file); shards in name order.")
    target: str | None = Field(None, description="Name of the target column (default: the last column).")
    features: list[str] | None = Field(None, description="Feature columns to read (default: every other column).")
    task: TaskChoice = Field(
        "auto", description="auto: a floating-point target is regression; integer, boolean or text: classification."
    )
    classes: list[str] | None = Field(None, description="Class labels in the order of their codes 0..k-1.")


class ColumnarDataset(Dataset):
    """A table of typed columns; subclasses name the Arrow file format and the files' suffixes."""

    Params: ClassVar[type[Params]] = ColumnarParams
    params: ColumnarParams
    dtype: np.dtype[Any] = np.dtype(np.float64)  # the features' dtype: see plugins.file_datasets.FEATURE_DTYPE
    format: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    def load(self, rng: np.random.Generator) -> DataBundle:
        import pyarrow as pa
        import pyarrow.dataset as pads

        p = self.params
        paths = resolve_paths(self, p.path, self.suffixes)
        where = paths[0] if len(paths) == 1 else paths[0].parent
        try:
            source = pads.dataset([str(f) for f in paths], format=self.format)
            columns = list(source.schema.names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{where}: not a readable {self.name} file ({_first_line(exc)})") from None
        target = p.target if p.target is not None else columns[-1]
        check_column(where, target, columns, "target")
        features = p.features or [c for c in columns if c != target]
        for name in features:
            check_column(where, name, columns, "features")
        schema = source.schema
        for name in features:
            kind = schema.field(name).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
                raise DataError(
                    f"{where}: column {name!r} is of type {kind}, not numeric; only the target may hold labels"
                )
        X = self.mapped(paths, features) if features else None
        try:
            table = source.to_table(columns=[target])
            if X is None and features and table.num_rows:
                X = np.empty((table.num_rows, len(features)), dtype=self.dtype, order="F")
        except (pa.ArrowInvalid, OSError) as exc:  # shards whose schemas differ, a torn file
            raise DataError(f"{where}: not a readable {self.name} table ({_first_line(exc)})") from None
        if table.num_rows == 0:
            raise DataError(f"{where}: no data rows")
        if isinstance(X, np.ndarray):
            fill_columns(X, source, features, f"{where}: not a readable {self.name} table")
        return _bundle(table, features, target, p, where, self.dtype, X)

    def mapped(self, paths: list[Path], features: list[str]) -> Any:
        """The feature columns left in their files, or None to read them (a format that cannot be mapped)."""
        return None


def fill_columns(X: np.ndarray, source: Any, names: list[str], unreadable: str) -> None:
    """Column j of X: column `names[j]` of the dataset, each record batch cast to float64 and then to X's dtype
    (the bits of the float64 table cast later). One scan per column, one batch read ahead: the
    peak is X and a column of a record batch, not the table (a row group's columns decoded together, or all
    of them, and then X as well)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for j, name in enumerate(names):
        start = 0
        for batch in _scan(source, name, unreadable):
            values = pc.cast(batch.column(0), pa.float64()).to_numpy(zero_copy_only=False)
            with np.errstate(over="ignore"):  # a float64 beyond float32's range is inf (as the CSV reader's)
                X[start : start + len(values), j] = values
            start += len(values)
        if start != len(X):
            raise DataError(f"{unreadable} (column {name!r} has {start} rows, the target {len(X)})")


def _scan(source: Any, name: str, unreadable: str) -> Any:
    """The record batches of one column, in order; a file Arrow cannot read is a DataError saying so."""
    import pyarrow as pa

    try:
        yield from source.to_batches(columns=[name], batch_readahead=1, fragment_readahead=1)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{unreadable} ({_first_line(exc)})") from None


def _bundle(
    table: Any, features: list[str], target: str, p: ColumnarParams, where: Path, dtype: np.dtype[Any], X: Any
) -> DataBundle:
    import pyarrow as pa
    import pyarrow.compute as pc

    from plugins.file_datasets import _check_binary
    from plugins.tables import encode_labels, text_codes

    if X is None:  # no feature columns
        X = np.empty((table.num_rows, 0), dtype=dtype)
    column = table.column(target)
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    floating = pa.types.is_floating(kind)
    description = f"{where.name}: {target}"
    if p.task == "regression" or (p.task == "auto" and floating):
        if text or not (floating or pa.types.is_integer(kind)):
            raise DataError(f"{where}: task = 'regression' but the target column {target!r} is of type {kind}")
        y = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return DataBundle(X, np.asarray(y, dtype=np.float64), "regression", features, [target], description)
    if column.null_count:
        rows = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
        raise DataError(
            f"{where}: target {target!r} has {len(rows)} missing labels (first at row {int(rows[0])}); "
            "drop those rows or fill in their labels before training"
        )
    label_where = f"{where}: column {target!r}"
    if text:
        codes, names = text_codes(pc.utf8_trim_whitespace(column), p.classes, label_where)
    else:
        codes, names = encode_labels(column.to_numpy(zero_copy_only=False), p.classes, label_where)
    task = p.task if p.task != "auto" else ("binary" if len(names) == 2 else "multiclass")
    _check_binary(task, names, label_where)
    return DataBundle(X, codes, task, features, names, description)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class ParquetDataset(ColumnarDataset):
    """A Parquet file (or folder, or glob of them): only the chosen columns are read."""

    name: ClassVar[str] = "parquet"
    format: ClassVar[str] = "parquet"
    suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".pq")


class FeatherParams(ColumnarParams):
    in_memory: bool | Literal["auto"] = Field(
        "auto",
        description="true reads the file; false memory-maps it (minibatches read from the file; it must be written "
        "uncompressed, with numeric columns and no missing values); auto maps it when it can be mapped and is "
        "larger than a quarter of the available memory.",
    )


class FeatherDataset(ColumnarDataset):
    """A Feather (Arrow IPC) file, or folder, or glob of them: only the chosen columns are read, or mapped."""

    name: ClassVar[str] = "feather"
    Params: ClassVar[type[Params]] = FeatherParams
    params: FeatherParams
    format: ClassVar[str] = "feather"
    suffixes: ClassVar[tuple[str, ...]] = (".feather", ".arrow", ".ipc")

    def mapped(self, paths: list[Path], features: list[str]) -> Any:
        from framework.mapped import Stacked
        from plugins.arrow_columns import Unmappable, map_columns
        from plugins.file_datasets import _map_it

        if not _map_it(paths, self.params.in_memory):
            return None
        try:
            parts = [map_columns(path, features)[0] for path in paths]
        except Unmappable as exc:
            if self.params.in_memory == "auto":
                return None  # read instead: compressed, boolean or missing values
            raise DataError(
                f"{exc}; help: in_memory = false maps an uncompressed Arrow IPC file with numeric feature columns "
                "(pyarrow.feather.write_feather(table, path, compression='uncompressed')), or set in_memory = true"
            ) from None
        return parts[0] if len(parts) == 1 else Stacked(parts)
