"""CSV and Parquet tables read into one preallocated matrix (issue 21): the values of an independent reader.

The oracle is the csv module with `float()` (or pyarrow's whole-table read, column by column, for Parquet),
cast once to the dataset's dtype: the reader fills its matrix batch by batch (or column by column), made for
the file's lines, moved down in place when there were fewer rows, grown when there were more.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from plugins.file_datasets import CsvDataset
from plugins.tables import FeatureRows, line_count

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def oracle(text: str, dtype: type) -> tuple[np.ndarray, list[str]]:
    rows = [row for row in csv.reader(io.StringIO(text)) if row][1:]
    X = np.array([[float(v) for v in row[:-1]] for row in rows], dtype=np.float64).astype(dtype)
    return X, [row[-1] for row in rows]


def table_text(n: int, newline: str = "\n", seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-5, 40, size=(n, 3))  # some beyond float32's range
    cells = [",".join(repr(float(v)) for v in row) + f",{'xy'[i % 2]}" for i, row in enumerate(values)]
    lines = ["a,b,c,label", *cells]
    return newline.join(lines) + newline


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "layout",
    ["plain", "no final newline", "blank lines", "crlf", "lone cr", "quoted newline in a label"],
)
def test_the_csv_matrix_holds_the_independent_readers_values(tmp_path: Path, dtype: type, layout: str) -> None:
    text = table_text(20_000)  # several Arrow blocks of 1 MiB
    if layout == "no final newline":
        text = text.rstrip("\n")
    elif layout == "blank lines":
        text = text.replace("\nx", "\n\nx", 50) + "\n\n\n"  # more lines than rows: the columns are moved down
    elif layout == "crlf":
        text = text.replace("\n", "\r\n")
    elif layout == "lone cr":  # no newline at all: the matrix is made for no rows (under 1 MiB: one line)
        text = table_text(2_000).replace("\n", "\r")
    elif layout == "quoted newline in a label":
        text = text.replace(",x\n", ',"x\ny"\n', 30)
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    dataset = CsvDataset(path=str(path))
    dataset.dtype = np.dtype(dtype)
    with np.errstate(over="ignore"):
        expected, labels = oracle(text.replace("\r\n", "\n").replace("\r", "\n"), dtype)
    bundle = dataset.load(np.random.default_rng(0))
    assert bundle.X.dtype == dtype and bundle.X.flags.f_contiguous  # column-major, as before
    np.testing.assert_array_equal(bundle.X, expected)
    names = sorted(set(labels))
    np.testing.assert_array_equal(bundle.y, [names.index(label) for label in labels])


def test_csv_shards_fill_one_matrix_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    texts = [table_text(n, seed=n) for n in (3000, 1, 7000)]
    for i, text in enumerate(texts):
        (tmp_path / "s" / f"part-{i}.csv").write_text(text + ("\n" if i == 1 else ""))  # one blank line more
    bundle = CsvDataset(path=str(tmp_path / "s")).load(np.random.default_rng(0))
    expected = np.concatenate([oracle(text, np.float64)[0] for text in texts])
    np.testing.assert_array_equal(bundle.X, expected)


def test_feature_rows_move_down_and_grow() -> None:
    rows = FeatureRows(10, np.float32)
    X = rows.reserve(4, 3)
    X[:4] = np.arange(12).reshape(4, 3)
    rows.rows = 4
    np.testing.assert_array_equal(rows.matrix(3), np.arange(12).reshape(4, 3))  # 4 of 10 rows: moved down
    grown = FeatureRows(2, np.float64)
    for start in range(0, 9, 3):
        block = grown.reserve(3, 2)
        block[grown.rows : grown.rows + 3] = np.arange(start * 2, start * 2 + 6).reshape(3, 2)
        grown.rows += 3
    np.testing.assert_array_equal(grown.matrix(2), np.arange(18).reshape(9, 2))
    assert FeatureRows(0, np.float64).matrix(4).shape == (0, 4)


def test_line_count_counts_a_last_line_without_its_newline(tmp_path: Path) -> None:
    for text, lines in [(b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"a\r\nb\r\n", 2), (b"\n\n", 2)]:
        (tmp_path / "f").write_bytes(text)
        assert line_count(tmp_path / "f") == lines


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_parquet_columns_fill_the_matrix_across_row_groups_and_shards(tmp_path: Path, dtype: type) -> None:
    from plugins.columnar_datasets import ParquetDataset

    rng = np.random.default_rng(5)
    parts = []
    (tmp_path / "s").mkdir()
    for i, n in enumerate((2500, 3, 4000)):
        part = pa.table(
            {
                "f": pa.array(rng.normal(size=n) * 1e39),  # float64 beyond float32's range: inf in float32
                "h": pa.array(rng.normal(size=n).astype(np.float32)),
                "k": pa.array(rng.integers(-1000, 1000, size=n), pa.int32()),
                "b": pa.array(rng.integers(0, 2, size=n).astype(bool)),
                "gap": pa.array([None if j % 7 == 0 else float(j) for j in range(n)]),
                "y": pa.array(rng.normal(size=n)),
            }
        )
        pq.write_table(part, tmp_path / "s" / f"part-{i}.parquet", row_group_size=700)
        parts.append(part)
    dataset = ParquetDataset(path=str(tmp_path / "s"))
    dataset.dtype = np.dtype(dtype)
    bundle = dataset.load(rng)
    whole = pa.concat_tables(parts)
    with np.errstate(over="ignore"):
        expected = np.column_stack(
            [
                np.asarray(whole.column(name).to_numpy(zero_copy_only=False), dtype=np.float64).astype(dtype)
                for name in ["f", "h", "k", "b", "gap"]
            ]
        )
    assert bundle.X.dtype == dtype and bundle.X.flags.f_contiguous
    np.testing.assert_array_equal(bundle.X, expected)  # nulls are NaN, as before (refused by training)
    np.testing.assert_array_equal(bundle.y, whole.column("y").to_numpy())
