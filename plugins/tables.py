"""Tables read through Apache Arrow (issue 21): the CSV fast path, Parquet and Feather, vectorised labels.

pyarrow is imported inside the functions, so that `backprop run` on a built-in dataset never loads it.

A CSV file is read by `pyarrow.csv` (multi-threaded): the feature columns typed as float64 as they are read,
the target as text, only the chosen columns kept. A line may be at most `LINE_LIMIT` bytes long (Arrow's block
size: a row must fit in one block). Whenever Arrow refuses a file (a ragged row, a cell that is not a number,
bytes that are not UTF-8, a line over the limit, an empty file), `ArrowRefused` is raised and the caller reads
the file again with the plain Python reader, whose message names the file, the line or data row and the column;
the error path may be slow, the path of a clean file is not.

Labels are encoded without a Python call per row: `np.unique(..., return_inverse=True)` (or Arrow's dictionary
encoding) finds the k distinct values, and a lookup table of k codes maps every row at once.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from framework.errors import DataError, did_you_mean

LINE_LIMIT = 1 << 20
"""The longest CSV line accepted, in bytes (1 MiB); a longer one is refused, naming its line."""


class ArrowRefused(Exception):
    """Arrow could not read the file; the Python reader reads it again to say exactly why."""


def label_codes(
    uniques: Any, inverse: np.ndarray, classes: list[str] | None, where: str
) -> tuple[np.ndarray, list[str]]:
    """Codes 0..k-1 for every row, from the distinct values `uniques` and each row's index `inverse` into them.

    A label's name is its text stripped (1.0 and 1 are the same class); the codes follow `classes` when given,
    else the sorted names (numbers as numbers: 2 before 10).
    """
    names = [label_name(u) for u in uniques]
    if classes is None:
        try:
            order = sorted(set(names), key=float)
        except ValueError:
            order = sorted(set(names))
    else:
        order = list(classes)
        unknown = sorted(set(names) - set(order))
        if unknown:
            raise DataError(f"{where}: labels {unknown[:5]} are not among the classes {order}")
    index = {name: i for i, name in enumerate(order)}
    lookup = np.array([index[n] for n in names], dtype=np.int64)
    return lookup[np.asarray(inverse, dtype=np.intp).reshape(-1)], order


def label_name(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def encode_labels(values: Any, classes: list[str] | None, where: str) -> tuple[np.ndarray, list[str]]:
    """Labels (a numpy array or a list) as integers 0..k-1, with np.unique: no Python call per row."""
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind in "OU":  # text: strip first, so " a" and "a" are one label
        array = np.char.strip(array.astype(str))
    uniques, inverse = np.unique(array, return_inverse=True)
    return label_codes(list(uniques), inverse, classes, where)


def resolve_path(dataset: Any, path: str) -> Path:
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


GLOB = set("*?[")


def resolve_paths(dataset: Any, path: str, suffixes: tuple[str, ...]) -> list[Path]:
    """The files `path` names: one file, every file with one of `suffixes` in a folder, or a glob; in name order."""
    given = Path(path).expanduser()
    if not given.is_absolute() and dataset.base_dir is not None:
        given = dataset.base_dir / given
    if GLOB & set(path):
        anchor = Path(given.anchor) if given.is_absolute() else Path()
        files = sorted(f for f in anchor.glob(str(given.relative_to(anchor))) if f.is_file())
        if not files:
            raise DataError(f"data.path: no file matches {str(given)!r}; help: check the pattern (* ? [..] globs)")
        return files
    if given.is_dir():
        files = sorted(f for f in given.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
        if not files:
            raise DataError(
                f"data.path: {str(given)!r} is a directory with no {'/'.join(suffixes)} file in it; help: name the "
                "data file itself, or a folder or glob of shards"
            )
        return files
    return [resolve_path(dataset, path)]


def check_column(path: Path, name: str, columns: list[str], key: str) -> None:
    if name not in columns:
        hint = did_you_mean(name, columns)
        raise DataError(
            f"data.{key}: {path.name} has no column {name!r}. Columns: {', '.join(columns)}."
            + (f" Did you mean {hint!r}?" if hint else "")
        )


BOM = b"\xef\xbb\xbf"


def refuse_bom(path: Path) -> None:
    """Refuse a file that starts with a UTF-8 byte-order mark (as Excel's "CSV UTF-8" writes): the first
    column's name would silently carry it through any tool that does not strip it."""
    with open(path, "rb") as fh:
        if fh.read(len(BOM)) == BOM:
            raise DataError(
                f"{path}: line 1 starts with a UTF-8 byte-order mark (BOM); help: save the table as plain UTF-8 CSV "
                "(Excel: 'CSV (Comma delimited)'), or drop the file's first 3 bytes: tail -c +4"
            )


def csv_header(path: Path, delimiter: str) -> list[str]:
    """The first non-empty row, as the csv module reads it (the UTF-8 BOM dropped); ArrowRefused if unreadable."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            head = fh.readline(LINE_LIMIT + 1)
            while head and not head.strip("\r\n"):
                head = fh.readline(LINE_LIMIT + 1)
    except (UnicodeDecodeError, OSError):
        raise ArrowRefused from None
    if not head or len(head) > LINE_LIMIT:
        raise ArrowRefused
    try:
        return next(csv.reader([head], delimiter=delimiter))
    except (csv.Error, StopIteration):
        raise ArrowRefused from None


def check_line_lengths(path: Path) -> None:
    """Refuse a line longer than `LINE_LIMIT` bytes, naming it, touching only a few bytes per 512 KiB.

    A line longer than the limit covers a whole aligned half-limit block with no newline in it; each block is
    searched only up to its first newline (memchr), and a block without one is measured exactly.
    """
    import mmap

    size = path.stat().st_size
    if size <= LINE_LIMIT:
        return
    half = LINE_LIMIT // 2
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for start in range(0, size, half):
            if mm.find(b"\n", start, min(start + half, size)) >= 0:
                continue
            begin = mm.rfind(b"\n", 0, start) + 1
            end = mm.find(b"\n", start)
            length = (size if end < 0 else end) - begin
            if length > LINE_LIMIT:
                number = mm[:begin].count(b"\n") + 1
                raise DataError(
                    f"{path}: line {number} is {length:,} bytes long, over the limit of {LINE_LIMIT:,} bytes (1 MiB) "
                    "per line; help: split the row, or save wide data as Parquet or .npy"
                )


def line_count(path: Path) -> int:
    """The number of lines in a file (a last line without its newline counted too), 4 MiB of the map at a time
    (0.06 s for 230 MB: a quarter of `bytes.count`'s time)."""
    import mmap

    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            data = np.frombuffer(mm, dtype=np.uint8)
            lines = sum(int(np.count_nonzero(data[i : i + (1 << 22)] == 10)) for i in range(0, len(data), 1 << 22))
            lines += int(data[-1] != 10)
            del data  # the map closes only once no array looks into it
    except (OSError, ValueError):  # an empty file (nothing to map), or one that cannot be read: Arrow says why
        return 0
    return lines


class FeatureRows:
    """The features of a CSV table (or its shards) as one column-major matrix of `dtype`, filled batch by batch.

    It is made for `capacity` rows (the files' lines, less the header: the rows, unless a row spans lines or
    lines are blank), its pages touched only as rows are written. `matrix()` is it when the rows filled it; for
    fewer rows, each column is moved down in place to make a column-major matrix of just the rows; rows beyond
    the capacity (lines ended by a lone carriage return) grow it. Peak memory: the features in `dtype`, plus a
    record batch (not the batches, then their concatenation).
    """

    def __init__(self, capacity: int, dtype: Any) -> None:
        self.capacity, self.dtype, self.rows = max(capacity, 0), np.dtype(dtype), 0
        self.X: np.ndarray | None = None

    def reserve(self, n: int, width: int) -> np.ndarray:
        """The matrix, with room for `n` rows more."""
        if self.X is None:
            self.X = np.empty((max(self.capacity, n), width), dtype=self.dtype, order="F")
        elif self.rows + n > len(self.X):
            grown = np.empty((max(2 * len(self.X), self.rows + n), width), dtype=self.dtype, order="F")
            grown[: self.rows] = self.X[: self.rows]
            self.X = grown
        return self.X

    def matrix(self, width: int) -> np.ndarray:
        X, n = self.X, self.rows
        if X is None:
            return np.empty((0, width), dtype=self.dtype, order="F")
        if len(X) == n:
            return X
        flat, capacity = X.reshape(-1, order="F"), len(X)  # a view: column j is flat[j * capacity:][:capacity]
        for j in range(1, width):
            flat[j * n : (j + 1) * n] = flat[j * capacity : j * capacity + n]  # numpy copies overlapping parts right
        return flat[: n * width].reshape((n, width), order="F")


class CsvPart:
    """One CSV file read by Arrow: its feature rows written into `FeatureRows`, the target as Arrow text arrays.

    `bad` maps a feature's index to the rows (0-based, within the file) whose value is missing, NaN or infinite,
    found on the float64 values before the cast, so a value out of float32's range is not mistaken for one.
    """

    def __init__(self, features: list[str], target: str) -> None:
        self.features, self.target = features, target
        self.text: list[Any] = []
        self.bad: dict[int, list[np.ndarray]] = {}
        self.rows = 0


def read_csv_part(
    path: Path, delimiter: str, header: bool, target: str | None, features: list[str] | None, into: FeatureRows
) -> CsvPart:
    """The chosen columns of a CSV file, streamed by Arrow (`open_csv`, parsing ahead on its threads).

    Each record batch's features (parsed as float64) are cast into the rows of `into` that follow the earlier
    batches', one column at a time, so the float64 table is never whole in memory, nor the batches together.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    check_line_lengths(path)
    raw = csv_header(path, delimiter)
    columns = [c.strip() for c in raw] if header else [str(i) for i in range(len(raw))]
    arrow_names = raw if header else [f"f{i}" for i in range(len(raw))]
    target = target if target is not None else columns[-1]
    check_column(path, target, columns, "target")
    chosen = features or [c for c in columns if c != target]
    for name in chosen:
        check_column(path, name, columns, "features")
    if len(set(columns)) != len(columns):
        raise ArrowRefused  # duplicate names: the Python reader's rule (the last one wins) applies
    arrow_of = dict(zip(columns, arrow_names, strict=True))
    types = {arrow_of[name]: pa.float64() for name in chosen}
    types[arrow_of[target]] = pa.string()
    part = CsvPart(chosen, target)
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=LINE_LIMIT, autogenerate_column_names=not header),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(dict.fromkeys([arrow_of[n] for n in chosen] + [arrow_of[target]])),
                null_values=[""],  # an empty cell is missing (refused later, naming the column); "NA" is not a number
                strings_can_be_null=False,
            ),
        )
        position = {name: reader.schema.get_field_index(arrow_of[name]) for name in chosen}
        target_at = reader.schema.get_field_index(arrow_of[target])
        for batch in reader:
            part.rows += add_batch(part, batch, [position[n] for n in chosen], target_at, into)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        raise ArrowRefused from None
    return part


def add_batch(part: CsvPart, batch: Any, positions: list[int], target_at: int, into: FeatureRows) -> int:
    """Cast one record batch's features into the next rows of `into`, keep its target text; its row count."""
    n = batch.num_rows
    X, start = into.reserve(n, len(positions)), into.rows
    for j, at in enumerate(positions):
        values = batch.column(at).to_numpy(zero_copy_only=False)  # float64; a null is NaN
        finite = np.isfinite(values)
        if not finite.all():
            part.bad.setdefault(j, []).append(np.flatnonzero(~finite) + part.rows)
        with np.errstate(over="ignore"):  # a float64 beyond float32's range is inf, as a later cast makes it
            X[start : start + n, j] = values
    into.rows += n
    part.text.append(batch.column(target_at))
    return int(n)


def text_target(column: Any) -> tuple[Any, bool]:
    """(trimmed text column, numeric?): numeric when every value parses as a float."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(column)
    try:
        pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return text, False
    return text, True


def text_codes(text: Any, classes: list[str] | None, where: str) -> tuple[np.ndarray, list[str]]:
    """Codes of an Arrow text column, through its dictionary encoding (k distinct values, one lookup)."""
    encoded = text.combine_chunks().dictionary_encode() if hasattr(text, "combine_chunks") else text.dictionary_encode()
    uniques = encoded.dictionary.to_pylist()
    return label_codes(uniques, encoded.indices.to_numpy(zero_copy_only=False), classes, where)


def text_floats(text: Any) -> np.ndarray:
    """A text column that parses as numbers, as float64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return np.asarray(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def refuse_non_finite(values: np.ndarray, names: list[str], shards: list[tuple[Path, int]], what: str) -> None:
    """Refuse NaN or infinite values (empty cells, `nan`, `inf`), naming the file, the column and the first data
    row (1-based, within its shard); `shards` is each file with its number of data rows, in order."""
    matrix = values.reshape(len(values), -1)
    bad = ~np.isfinite(matrix).all(axis=0)
    if not bad.any():
        return
    column = int(np.flatnonzero(bad)[0])
    refuse_rows(np.flatnonzero(~np.isfinite(matrix[:, column])), names[column], shards, what)


def refuse_rows(rows: np.ndarray, name: str, shards: list[tuple[Path, int]], what: str) -> None:
    """The refusal of `refuse_non_finite`, for column `name` whose bad rows (0-based, over all shards) are `rows`."""
    first, shard = int(rows[0]), 0
    while shard < len(shards) - 1 and first >= shards[shard][1]:  # the row's shard, and its row within it
        first -= shards[shard][1]
        shard += 1
    path = shards[shard][0]
    help_ = "clean or impute them before training" if what == "feature" else "drop those rows or fill in their targets"
    raise DataError(
        f"{path}: {what} {name!r} has NaN or infinite values ({len(rows)} rows, first in data row {first + 1}); {help_}"
    )
