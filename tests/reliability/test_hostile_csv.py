"""Hostile CSV files (issue 19), through the command line: each is refused before training with one line that
names the file and the row, exit 2, and no run in the store (not even a store).

The refusals themselves are the CSV reader's (plugins/file_datasets.py, issue 21); these tests check what the
user sees of them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework.cli import app
from plugins.tables import LINE_LIMIT
from tests.reliability.test_bad_inputs import CSV_BASE, listing, tracked

__all__ = ["tracked"]


HEADER = "area,rooms,label\n"
ROWS = "70,3,flat\n120,5,house\n55,2,flat\n"
ROW = re.compile(r"\b(line|data row) (\d+)\b")
"""A row as the file's line (the header is line 1, as an editor shows it) or as the data row (counting from 1)."""

CASES: dict[str, tuple[bytes, int | None]] = {
    # name: (the file, its line the message must name, or None when there is no row to name)
    "NaN": ((HEADER + ROWS + "nan,4,house\n").encode(), 5),
    "inf": ((HEADER + "70,inf,flat\n" + ROWS).encode(), 2),
    "ragged row": ((HEADER + "70,3\n" + ROWS).encode(), 2),
    "non-numeric cell": ((HEADER + ROWS + "big,4,house\n").encode(), 5),
    "header only": (HEADER.encode(), None),
    "UTF-8 BOM": (b"\xef\xbb\xbf" + (HEADER + ROWS).encode(), 1),
    "line past the limit": ((HEADER + ROWS + "1" * (LINE_LIMIT + 1) + ",4,house\n").encode(), 5),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_csv_is_refused_naming_the_file_and_row(name: str, tracked: Path) -> None:
    content, row = CASES[name]
    (tracked / "exp.toml").write_text(CSV_BASE)
    (tracked / "table.csv").write_bytes(content)
    before = listing(tracked)
    result = CliRunner().invoke(app, ["run", "exp.toml"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "table.csv" in lines[0], lines[0]
    if row is None:
        assert "no data rows" in lines[0]
    else:
        found = ROW.search(lines[0])
        assert found is not None, lines[0]
        number = int(found.group(2))
        assert number == (row if found.group(1) == "line" else row - 1), lines[0]
    assert "Traceback" not in result.output
    assert not (tracked / "mlflow.db").exists()  # no run, not even a store
    assert listing(tracked) == before
