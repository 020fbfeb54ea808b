"""Datasets read from files: `csv` (a table with a target column) and `npz` (numpy `.npz` or `.npy` arrays).

A CSV file is read by pyarrow (plugins/tables.py); a file Arrow refuses is read again by the Python reader here,
whose message names the file, the line or data row and the column. A line may be at most 1 MiB long.

Relative paths are relative to the experiment file (or the current directory for an experiment built in
Python). Nothing is unpickled: `.npz`/`.npy` files are read with `allow_pickle=False`.

Targets: with `task = "auto"`, a target column that is not numeric is a classification target (binary for
two labels, multiclass for more), a numeric one a regression target. Class labels, text or numbers, are
encoded as 0..k-1 in the order of `classes` if given, else sorted; the label names are kept as the
dataset's `target_names` (saved with the model, so predictions can be read as labels). Missing or
non-finite feature values are not imputed: training refuses them, naming the column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from framework import DataBundle, Dataset, Params, hookimpl
from framework.errors import DataError
from framework.mapped import NpyRows, Stacked
from plugins.tables import (
    LINE_LIMIT,
    ArrowRefused,
    check_column,
    encode_labels,
    refuse_non_finite,
    resolve_path,
    resolve_paths,
)

__all__ = ["CsvDataset", "NpzDataset", "encode_labels", "resolve_path"]

TaskChoice = Literal["auto", "regression", "binary", "multiclass"]

FEATURE_DTYPE = np.dtype(np.float64)
"""The features' dtype of a table read from a file, unless the caller sets the dataset's `dtype` to the
experiment's: parsed as float64 and cast once per batch as they are read, so a float32 run does not hold the
float64 table (and `framework.data.prepare` does not cast the bundle again). The values are the same bits either
way: a float64 value cast to float32 now or later rounds alike."""


def _task_of(task: TaskChoice, n_labels: int, numeric: bool) -> Any:
    if task != "auto":
        return task
    if numeric:
        return "regression"
    return "binary" if n_labels == 2 else "multiclass"


class CsvParams(Params):
    path: str = Field(description="The CSV file, relative to the experiment file.")
    target: str | None = Field(None, description="Name of the target column (default: the last column).")
    features: list[str] | None = Field(None, description="Feature columns (default: every other column).")
    header: bool = Field(True, description="The first row holds the column names (else: columns are 0, 1, ...).")
    delimiter: str = Field(",", min_length=1, max_length=1, description="The character between values.")
    task: TaskChoice = Field("auto", description="auto: a numeric target is regression, a text target classification.")
    classes: list[str] | None = Field(None, description="Class labels in the order of their codes 0..k-1.")


class CsvDataset(Dataset):
    """A CSV table: numeric feature columns and a target column chosen by name (labels may be text)."""

    name: ClassVar[str] = "csv"
    Params: ClassVar[type[Params]] = CsvParams
    params: CsvParams
    dtype: np.dtype[Any] = FEATURE_DTYPE

    def load(self, rng: np.random.Generator) -> DataBundle:
        paths = resolve_paths(self, self.params.path, (".csv", ".tsv", ".txt"))
        from plugins.tables import refuse_bom

        for path in paths:
            refuse_bom(path)
        try:
            return self._load_arrow(paths)
        except ArrowRefused as refused:
            shard = refused.args[0] if refused.args else paths[0]
            bundle = self._load_python(shard)  # reads it again to name the line, row and column Arrow refused
            if len(paths) == 1:
                return bundle
            raise DataError(
                f"{shard}: Arrow could not read this shard, though it is a valid CSV table on its own; help: "
                "write the shards with plain numbers (no '_' or other spellings Arrow does not parse)"
            ) from None

    def _load_arrow(self, paths: list[Path]) -> DataBundle:
        import pyarrow as pa

        from plugins.tables import (
            FeatureRows,
            csv_header,
            line_count,
            read_csv_part,
            refuse_rows,
            text_codes,
            text_floats,
            text_target,
        )

        p = self.params
        parts: list[Any] = []
        first = csv_header(paths[0], p.delimiter) if len(paths) > 1 else []
        # One matrix for every shard's rows, made for their lines (less the headers), filled as Arrow reads them.
        into = FeatureRows(sum(line_count(shard) - p.header for shard in paths), self.dtype)
        for shard in paths:  # read in name order as one table; every shard must have the first one's columns
            try:
                columns = csv_header(shard, p.delimiter) if first else first
            except ArrowRefused:
                raise ArrowRefused(shard) from None
            if columns != first:
                raise DataError(f"{shard}: columns {columns} differ from {paths[0].name}'s {first}")
            try:
                parts.append(read_csv_part(shard, p.delimiter, p.header, p.target, p.features, into))
            except ArrowRefused:
                raise ArrowRefused(shard) from None
        features, target = parts[0].features, parts[0].target
        path = paths[0] if len(paths) == 1 else paths[0].parent
        if sum(part.rows for part in parts) == 0:
            raise DataError(f"{path}: no data rows")
        shards = [(shard, part.rows) for shard, part in zip(paths, parts, strict=True)]
        starts = np.cumsum([0] + [part.rows for part in parts])
        for j, name in enumerate(features):  # the first column with a bad value, as refuse_non_finite names it
            bad = [rows + start for part, start in zip(parts, starts, strict=False) for rows in part.bad.get(j, [])]
            if bad:
                refuse_rows(np.concatenate(bad), name, shards, "feature")
        column = pa.chunked_array([chunk for part in parts for chunk in part.text], type=pa.string())
        del parts[:]
        X = into.matrix(len(features))
        del into
        text, numeric = text_target(column)
        where = f"{path}: column {target!r}"
        if p.task == "regression" or (p.task == "auto" and numeric):
            if not numeric:
                raise DataError(f"{path}: task = 'regression' but the target column {target!r} is not numeric")
            y = text_floats(text)
            refuse_non_finite(y, [target], shards, "target")
            return DataBundle(X, y, "regression", features, [target], f"{path.name}: {target}")
        codes, names = text_codes(text, p.classes, where)
        task = p.task if p.task != "auto" else ("binary" if len(names) == 2 else "multiclass")
        _check_binary(task, names, where)
        return DataBundle(X, codes, task, features, names, f"{path.name}: {target}")

    def _load_python(self, path: Path) -> DataBundle:
        """The plain reader: slow, but it names the line, data row and column of whatever is wrong."""
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = [row for row in csv.reader(_limited(fh, path), delimiter=self.params.delimiter) if row]
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); help: save the table as UTF-8 CSV"
            ) from None
        except csv.Error as exc:
            raise DataError(f"{path}: not a readable CSV table ({exc})") from None
        if self.params.header:
            if not rows:
                raise DataError(f"{path}: the file is empty")
            columns, rows = [c.strip() for c in rows[0]], rows[1:]
        else:
            columns = [str(i) for i in range(len(rows[0]) if rows else 0)]
        if not rows:
            raise DataError(f"{path}: no data rows")
        for number, row in enumerate(rows, start=2 if self.params.header else 1):
            if len(row) != len(columns):
                raise DataError(f"{path}: line {number} has {len(row)} values, expected {len(columns)}")
        target = self.params.target if self.params.target is not None else columns[-1]
        check_column(path, target, columns, "target")
        features = self.params.features or [c for c in columns if c != target]
        for name in features:
            check_column(path, name, columns, "features")
        table = {name: [row[i].strip() for row in rows] for i, name in enumerate(columns)}

        X = np.empty((len(rows), len(features)), dtype=np.float64)
        for j, name in enumerate(features):
            X[:, j] = self._numeric(path, name, table[name])
        refuse_non_finite(X, features, [(path, len(rows))], "feature")
        raw_target = table[target]
        numeric = _all_numeric(raw_target)
        n_labels = len(set(raw_target))
        task = _task_of(self.params.task, n_labels, numeric)
        if task == "regression":
            if not numeric:
                raise DataError(f"{path}: task = 'regression' but the target column {target!r} is not numeric")
            y = self._numeric(path, target, raw_target)
            refuse_non_finite(y, [target], [(path, len(rows))], "target")
            return DataBundle(X, y, "regression", features, [target], f"{path.name}: {target}")
        codes, names = encode_labels(raw_target, self.params.classes, f"{path}: column {target!r}")
        _check_binary(task, names, f"{path}: column {target!r}")
        return DataBundle(X, codes, task, features, names, f"{path.name}: {target}")

    @staticmethod
    def _numeric(path: Path, name: str, values: list[str]) -> np.ndarray:
        out = np.empty(len(values), dtype=np.float64)
        for i, value in enumerate(values):
            try:
                out[i] = float(value) if value != "" else np.nan  # empty: missing, refused with the column named
            except ValueError:
                raise DataError(
                    f"{path}: column {name!r} is not numeric ({value!r} in data row {i + 1}); only the target "
                    "may hold labels"
                ) from None
        return out


MAP_SHARE = 0.25
"""`in_memory = "auto"` maps an .npy file larger than this share of the available memory."""


def _map_it(paths: list[Path], in_memory: bool | str) -> bool:
    if in_memory != "auto":
        return not in_memory
    try:
        with open("/proc/meminfo") as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):  # not Linux: the physical memory, as the OS reports it
        import os

        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return sum(f.stat().st_size for f in paths) > MAP_SHARE * available


def _limited(lines: Iterable[str], path: Path) -> Iterator[str]:
    """The lines of a file, refusing one longer than `LINE_LIMIT` (Arrow's block: a row must fit in one)."""
    for number, line in enumerate(lines, start=1):
        if len(line) > LINE_LIMIT:
            raise DataError(
                f"{path}: line {number} is {len(line.encode()):,} bytes long, over the limit of {LINE_LIMIT:,} bytes "
                "(1 MiB) per line; help: split the row, or save wide data as Parquet or .npy"
            )
        yield line


def _check_binary(task: Any, names: list[str], where: str) -> None:
    if task == "binary" and len(names) != 2:
        raise DataError(f"{where}: task = 'binary' needs 2 labels, found {len(names)}: {names[:5]}")


def _all_numeric(values: list[str]) -> bool:
    try:
        for value in values:
            float(value)
    except ValueError:
        return False
    return True


class NpzParams(Params):
    path: str = Field(
        description="An .npz file (arrays X and y) or an .npy file (target in the last column); or a folder or glob "
        "of files of one of these formats (shards), read in name order as one table."
    )
    x_key: str = Field("X", description="The features' array in an .npz file.")
    y_key: str = Field("y", description="The targets' array in an .npz file.")
    task: TaskChoice = Field(
        "auto", description="auto: integer targets are classification, floating point ones regression."
    )
    classes: list[str] | None = Field(None, description="Class labels in the order of their codes 0..k-1.")
    feature_names: list[str] | None = Field(None, description="Names of the features (default: x0, x1, ...).")
    in_memory: bool | Literal["auto"] = Field(
        "auto",
        description="An .npy file (or shards): true reads it, false memory-maps it (minibatches read from the file); "
        "auto maps it when it is larger than a quarter of the available memory.",
    )


class NpzDataset(Dataset):
    """Numpy arrays from an .npz file (features and targets by key) or an .npy matrix (target in the last column)."""

    name: ClassVar[str] = "npz"
    Params: ClassVar[type[Params]] = NpzParams
    params: NpzParams

    def load(self, rng: np.random.Generator) -> DataBundle:
        paths = resolve_paths(self, self.params.path, (".npy", ".npz"))
        mapped = all(f.suffix.lower() == ".npy" for f in paths) and _map_it(paths, self.params.in_memory)
        parts = [self._arrays(f, mapped) for f in paths]
        path, (X, y) = paths[0], parts[0]
        if len(parts) > 1:  # shards, in name order: one table
            for shard, (X_i, _) in zip(paths[1:], parts[1:], strict=True):
                if shard.suffix.lower() != path.suffix.lower() or X_i.shape[1:] != X.shape[1:]:
                    raise DataError(
                        f"{shard}: features of shape {X_i.shape} in a {shard.suffix} file, but {path.name} has "
                        f"{X.shape} in a {path.suffix} file; help: shards are files of one format with the same columns"
                    )
            y = np.concatenate([y_i for _, y_i in parts])
            X = Stacked([X_i for X_i, _ in parts]) if mapped else np.concatenate([X_i for X_i, _ in parts])
            path = path.parent
        names = self.params.feature_names or [f"x{i}" for i in range(X.shape[1] if X.ndim == 2 else 0)]
        if len(names) != (X.shape[1] if X.ndim == 2 else -1):
            raise DataError(f"data.feature_names: {len(names)} names for features of shape {X.shape}")
        integer = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
        labels = not np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_)
        numeric = not (integer or labels)
        n_labels = len(np.unique(y)) if y.ndim == 1 and not numeric and self.params.task == "auto" else 0
        task = self.params.task if self.params.task != "auto" else _task_of("auto", n_labels, numeric)
        if task == "regression":
            if mapped and np.issubdtype(y.dtype, np.floating):  # left in the file, exact in its own dtype
                return DataBundle(X, y, "regression", names)
            return DataBundle(X, np.asarray(y, dtype=np.float64), "regression", names)
        codes, target_names = encode_labels(y.reshape(-1), self.params.classes, f"{path}: targets")
        _check_binary(task, target_names, f"{path}: targets")
        return DataBundle(X, codes, task, names, target_names)

    def _arrays(self, path: Path, mapped: bool) -> tuple[Any, np.ndarray]:
        """The features and targets of one file: an .npy matrix (mapped or read) or an .npz's two arrays."""
        try:
            loaded = np.load(path, allow_pickle=False, mmap_mode="r" if mapped else None)
        except ValueError as exc:
            raise DataError(f"{path}: refused to load ({exc})") from None
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable numpy file ({exc})") from None
        if isinstance(loaded, np.ndarray):
            if loaded.ndim != 2 or loaded.shape[1] < 2:
                raise DataError(f"{path}: an .npy dataset is a 2-D array with the target in the last column")
            if mapped:  # the features stay in the file, and so do the targets (read when a batch needs them)
                return NpyRows(loaded, loaded.shape[1] - 1), loaded[:, -1]
            return loaded[:, :-1], loaded[:, -1]
        with loaded:
            missing = [k for k in (self.params.x_key, self.params.y_key) if k not in loaded.files]
            if missing:
                raise DataError(f"{path}: no array {missing[0]!r}; arrays: {', '.join(loaded.files)}")
            try:  # arrays are read here, lazily: an object (pickled) array is refused at this point
                X, y = loaded[self.params.x_key], loaded[self.params.y_key]
            except ValueError as exc:
                raise DataError(
                    f"{path}: refused to load ({exc}); help: save plain numeric arrays (no object dtype)"
                ) from None
        if len(X) != len(y):
            raise DataError(
                f"{path}: {len(X)} feature rows but {len(y)} targets; help: {self.params.x_key!r} and "
                f"{self.params.y_key!r} need one row per sample"
            )
        return (X.reshape(-1, 1) if X.ndim == 1 else X), y


@hookimpl
def register_datasets() -> list[type[Dataset]]:
    from plugins.columnar_datasets import FeatherDataset, ParquetDataset

    return [CsvDataset, NpzDataset, ParquetDataset, FeatherDataset]
