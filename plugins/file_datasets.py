"""Datasets read from files: `csv` (a table with a target column) and `npz` (numpy `.npz` or `.npy` arrays).

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
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from framework import DataBundle, Dataset, Params, hookimpl
from framework.errors import DataError, did_you_mean

TaskChoice = Literal["auto", "regression", "binary", "multiclass"]


def resolve_path(dataset: Dataset, path: str) -> Path:
    """`path` relative to the experiment file's directory; a missing file is a one-line error."""
    resolved = Path(path).expanduser()
    if not resolved.is_absolute() and dataset.base_dir is not None:
        resolved = dataset.base_dir / resolved
    if resolved.is_dir():
        raise DataError(f"data.path: {str(resolved)!r} is a directory; help: name the data file itself")
    if not resolved.is_file():
        raise DataError(
            f"data.path: file {str(resolved)!r} not found; help: a relative path is relative to the experiment file"
        )
    return resolved


def encode_labels(
    values: list[str] | np.ndarray, classes: list[str] | None, where: str
) -> tuple[np.ndarray, list[str]]:
    """Labels as integers 0..k-1, in the order of `classes` (or sorted), and the label names."""
    names = [_label_name(v) for v in values]
    if classes is None:
        try:  # numeric labels sort as numbers (2 before 10), others as text
            order = sorted(set(names), key=float)
        except ValueError:
            order = sorted(set(names))
    else:
        order = list(classes)
        unknown = sorted(set(names) - set(order))
        if unknown:
            raise DataError(f"{where}: labels {unknown[:5]} are not among the classes {order}")
    index = {name: i for i, name in enumerate(order)}
    return np.array([index[n] for n in names], dtype=np.int64), order


def _label_name(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))  # 1.0 and 1 are the same class
    return str(value).strip()


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

    def load(self, rng: np.random.Generator) -> DataBundle:
        path = resolve_path(self, self.params.path)
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                rows = [row for row in csv.reader(fh, delimiter=self.params.delimiter) if row]
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
        self._check_column(path, target, columns, "target")
        features = self.params.features or [c for c in columns if c != target]
        for name in features:
            self._check_column(path, name, columns, "features")
        table = {name: [row[i].strip() for row in rows] for i, name in enumerate(columns)}

        X = np.empty((len(rows), len(features)), dtype=np.float64)
        for j, name in enumerate(features):
            X[:, j] = self._numeric(path, name, table[name])
        raw_target = table[target]
        numeric = _all_numeric(raw_target)
        n_labels = len(set(raw_target))
        task = _task_of(self.params.task, n_labels, numeric)
        if task == "regression":
            if not numeric:
                raise DataError(f"{path}: task = 'regression' but the target column {target!r} is not numeric")
            y = self._numeric(path, target, raw_target)
            return DataBundle(X, y, "regression", features, [target], f"{path.name}: {target}")
        codes, names = encode_labels(raw_target, self.params.classes, f"{path}: column {target!r}")
        _check_binary(task, names, f"{path}: column {target!r}")
        return DataBundle(X, codes, task, features, names, f"{path.name}: {target}")

    @staticmethod
    def _check_column(path: Path, name: str, columns: list[str], key: str) -> None:
        if name not in columns:
            hint = did_you_mean(name, columns)
            raise DataError(
                f"data.{key}: {path.name} has no column {name!r}. Columns: {', '.join(columns)}."
                + (f" Did you mean {hint!r}?" if hint else "")
            )

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
    path: str = Field(description="An .npz file (arrays X and y) or an .npy file (target in the last column).")
    x_key: str = Field("X", description="The features' array in an .npz file.")
    y_key: str = Field("y", description="The targets' array in an .npz file.")
    task: TaskChoice = Field(
        "auto", description="auto: integer targets are classification, floating point ones regression."
    )
    classes: list[str] | None = Field(None, description="Class labels in the order of their codes 0..k-1.")
    feature_names: list[str] | None = Field(None, description="Names of the features (default: x0, x1, ...).")


class NpzDataset(Dataset):
    """Numpy arrays from an .npz file (features and targets by key) or an .npy matrix (target in the last column)."""

    name: ClassVar[str] = "npz"
    Params: ClassVar[type[Params]] = NpzParams
    params: NpzParams

    def load(self, rng: np.random.Generator) -> DataBundle:
        path = resolve_path(self, self.params.path)
        try:
            loaded = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path}: refused to load ({exc})") from None
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable numpy file ({exc})") from None
        if isinstance(loaded, np.ndarray):
            if loaded.ndim != 2 or loaded.shape[1] < 2:
                raise DataError(f"{path}: an .npy dataset is a 2-D array with the target in the last column")
            X, y = loaded[:, :-1], loaded[:, -1]
        else:
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
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        names = self.params.feature_names or [f"x{i}" for i in range(X.shape[1] if X.ndim == 2 else 0)]
        if len(names) != (X.shape[1] if X.ndim == 2 else -1):
            raise DataError(f"data.feature_names: {len(names)} names for features of shape {X.shape}")
        integer = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
        labels = not np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_)
        n_labels = len(np.unique(y)) if y.ndim == 1 else 0
        task = self.params.task if self.params.task != "auto" else _task_of("auto", n_labels, not (integer or labels))
        if task == "regression":
            return DataBundle(X, np.asarray(y, dtype=np.float64), "regression", names)
        codes, target_names = encode_labels(y.reshape(-1), self.params.classes, f"{path}: targets")
        _check_binary(task, target_names, f"{path}: targets")
        return DataBundle(X, codes, task, names, target_names)


@hookimpl
def register_datasets() -> list[type[Dataset]]:
    return [CsvDataset, NpzDataset]
