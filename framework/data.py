"""From a dataset's arrays to the training and validation splits the trainer uses.

Checks come first (non-finite values, shapes), so bad data is rejected before any training, with the
feature named. The validation split is stratified for classification; standardisation is fitted on the
training split only and kept with the model so that predictions apply it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from framework.components import Array, DataBundle
from framework.errors import DataError
from framework.mapped import index_dtype, is_mapped
from framework.model import Standardizer


def check_bundle(bundle: DataBundle, dataset: str) -> None:
    """Reject data that cannot be trained on, naming the dataset and the feature or target."""
    X, y = bundle.X, bundle.y
    if X.ndim != 2:
        raise DataError(f"dataset {dataset!r}: features must be a 2-D array (samples, features), got {X.shape}")
    if len(X) == 0:
        raise DataError(f"dataset {dataset!r} has no samples")
    if len(y) != len(X):
        raise DataError(f"dataset {dataset!r}: {len(X)} feature rows but {len(y)} targets")
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"dataset {dataset!r}: features must be numeric, got dtype {X.dtype}")
    bad = ~_finite_columns(X)
    if bad.any():
        column = int(np.flatnonzero(bad)[0])
        label = bundle.feature_names[column] if column < len(bundle.feature_names) else f"#{column}"
        rows = _bad_rows(X, column)
        raise DataError(
            f"dataset {dataset!r}: feature {label!r} has NaN or infinite values "
            f"({len(rows)} rows, first at row {int(rows[0])}); clean or impute them before training"
        )
    if bundle.task == "regression":
        finite = np.isfinite(np.asarray(y, dtype=float))
        if not finite.all():
            rows = np.flatnonzero(~finite.reshape(len(y), -1).all(axis=1))
            label = ", ".join(repr(n) for n in bundle.target_names) or "the target"
            raise DataError(
                f"dataset {dataset!r}: target {label} has NaN or infinite values ({len(rows)} rows, first at "
                f"row {int(rows[0])}); drop those rows or fill in their targets before training"
            )
    elif len(y) and (np.min(y) < 0 or not np.issubdtype(np.asarray(y).dtype, np.integer)):
        raise DataError(f"dataset {dataset!r}: class labels must be integers from 0, got dtype {np.asarray(y).dtype}")


def _finite_columns(X: Array, rows: int = 1 << 16) -> Array:
    """Per column: every value finite. In chunks of rows, so a memory-mapped file is never read whole."""
    if not is_mapped(X):
        return np.asarray(np.isfinite(X).all(axis=0))
    finite = np.ones(X.shape[1], dtype=bool)
    for start in range(0, len(X), rows):
        finite &= np.isfinite(X[start : start + rows]).all(axis=0)
    return finite


def _bad_rows(X: Array, column: int, rows: int = 1 << 16) -> Array:
    """The rows whose value in `column` is NaN or infinite (in chunks of rows for mapped features)."""
    if not is_mapped(X):
        return np.flatnonzero(~np.isfinite(X[:, column]))
    found = [
        start + np.flatnonzero(~np.isfinite(X[start : start + rows][:, column])) for start in range(0, len(X), rows)
    ]
    return np.concatenate(found)


def split_indices(
    n: int, fraction: float, rng: np.random.Generator, labels: Array | None = None
) -> tuple[Array, Array]:
    """Train and validation indices, sorted; stratified by `labels` when given (each class keeps its share).

    int32 below 2**31 rows (`index_dtype`): 4 bytes a row, not 8. The permutation of an int32 `arange` is the
    one `rng.permutation(n)` gives, from the same draws (tests/framework/test_mapped_memory.py checks it)."""
    itype = index_dtype(n)
    if fraction <= 0:
        return np.arange(n, dtype=itype), np.arange(0, dtype=itype)
    if labels is None:
        perm = rng.permutation(np.arange(n, dtype=itype))
        n_val = max(1, round(n * fraction))
        if n_val >= n:
            raise DataError(
                f"data.validation_split: {fraction} leaves no training samples out of {n}; "
                "help: hold out a smaller fraction (0 <= validation_split < 1)"
            )
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val_parts = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        val_parts.append(members[: round(len(members) * fraction)])
    val = np.sort(np.concatenate(val_parts)).astype(itype) if val_parts else np.arange(0, dtype=itype)
    if len(val) == 0:
        # Too few samples per class to stratify: fall back to a plain random split.
        return split_indices(n, fraction, rng, None)
    rest = np.ones(n, dtype=bool)
    rest[val] = False
    train = np.arange(n, dtype=itype)[rest]  # every row not in val, in order (setdiff1d's, without its sorts)
    if len(train) == 0:
        raise DataError(
            f"data.validation_split: {fraction} leaves no training samples out of {n}; "
            "help: hold out a smaller fraction (0 <= validation_split < 1)"
        )
    return train, val


def prepare(
    bundle: DataBundle, fraction: float, standardize: bool, dtype: np.dtype[Any], rng: np.random.Generator
) -> tuple[Array, Array, Array, Array, Standardizer | None]:
    """Split, cast and standardise: (X_train, y_train, X_val, y_val, standardizer).

    Memory-mapped features (`np.memmap` or a `RowSource`) stay in their file: the splits are `MappedRows` that
    gather, cast and standardise rows per minibatch, with the statistics from a streaming pass (framework/mapped.py).
    """
    y = np.asarray(bundle.y)
    labels = y if bundle.task != "regression" else None
    if is_mapped(bundle.X):
        from framework.mapped import MappedRows, streamed_standardizer

        train_idx, val_idx = split_indices(len(bundle.X), fraction, rng, labels)
        whole = len(val_idx) == 0  # every row trains, in order: no index array, and the targets are y itself
        train = MappedRows(bundle.X, None if whole else train_idx, dtype)
        y_train = y if whole else y[train_idx]
        del train_idx
        mapped_scaler = streamed_standardizer(train) if standardize else None
        train.scaler = mapped_scaler
        val = MappedRows(bundle.X, val_idx, dtype, mapped_scaler)
        return train, y_train, val, y[val_idx], mapped_scaler  # type: ignore[return-value]
    X = np.asarray(bundle.X, dtype=dtype)
    train_idx, val_idx = split_indices(len(X), fraction, rng, labels)
    X_train, X_val = X[train_idx], X[val_idx]
    scaler = Standardizer.fit(X_train) if standardize else None
    if scaler is not None:
        X_train = scaler.transform(X_train)
        X_val = scaler.transform(X_val)
    return (
        np.ascontiguousarray(X_train),
        y[train_idx],
        np.ascontiguousarray(X_val),
        y[val_idx],
        scaler,
    )
