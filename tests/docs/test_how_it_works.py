"""docs/how-it-works.md: its python blocks run, and the helper that runs them reports failures well."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import MarkdownBlockError, python_blocks, run_markdown_python
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "how-it-works.md"


def test_how_it_works_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # Were anything tracked despite track=False, it would land here, not in the repository.
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.chdir(ROOT)
    before = {p.name for p in ROOT.iterdir()}

    namespace = run_markdown_python(PAGE)

    assert "one_step" in namespace  # the hand-written step was checked against backprop's
    assert not store.exists(), "a doc example wrote an MLflow store; the examples must use track=False"
    assert {p.name for p in ROOT.iterdir()} == before, "a doc example wrote files into the repository"


def test_blocks_share_one_namespace_in_order(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n```python\nx = 1\n```\n\n```\nnot = python\n```\n\n"
        "- item\n\n  ```python\n  y = x + 1\n  ```\n\n```pycon\n>>> ignored\n```\n\n"
        "````markdown\n```python\nraise AssertionError('shown, not run')\n```\n````\n",
        encoding="utf-8",
    )
    assert [line for line, _ in python_blocks(page.read_text(encoding="utf-8"))] == [3, 13]
    assert run_markdown_python(page)["y"] == 2


def test_a_failing_block_is_named(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n```python\nraise RuntimeError('boom')\n```\n", encoding="utf-8")
    with pytest.raises(MarkdownBlockError, match=r"python block 2 of 2 \(line 5\) raised RuntimeError: boom"):
        run_markdown_python(page)


def test_a_page_without_blocks_or_with_an_unclosed_block_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("No code here.\n", encoding="utf-8")
    with pytest.raises(MarkdownBlockError, match="no ```python blocks"):
        run_markdown_python(page)
    page.write_text("```python\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        run_markdown_python(page)


def test_the_explain_output_on_the_page_is_the_commands() -> None:
    import re

    from typer.testing import CliRunner

    from framework.cli import app

    result = CliRunner().invoke(app, ["explain", str(ROOT / "experiments" / "seed.toml")])
    assert result.exit_code == 0, result.output
    shown = re.search(r"```text\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert shown is not None, "docs/how-it-works.md: no ```text block with the explain output"
    assert shown.group(1) == result.output, "regenerate it: backprop explain experiments/seed.toml"
