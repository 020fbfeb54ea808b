"""docs/how-it-works.md: its python blocks run; its `text` blocks are `backprop explain experiments/seed.toml`'s
output, cut into the step by step, and hold the lesson's numbers; every number its prose quotes is in a checked
block; and the helper that runs the blocks reports failures well."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.cli import app
from tests.docs.markdown import Block, MarkdownBlockError, fenced_blocks, python_blocks, run_markdown_python
from tests.framework.test_explain import lesson_step
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "how-it-works.md"
SEED = ROOT / "experiments" / "seed.toml"

STEP_BY_STEP: list[tuple[str, tuple[str, ...]]] = [
    ("### 0. The starting weights", ("w1", "b1", "w2", "b2")),
    ("### 1. Forward pass", ("x", "z1", "a1", "z2", "output")),
    ("### 2. Loss", ("loss", "grad_output")),
    ("### 3. Backward pass", ("delta2", "deriv_w2", "deriv_b2")),  # the output layer
    ("### 3. Backward pass", ("grad_a1", "delta1", "deriv_w1", "deriv_b1")),  # the hidden layer
    ("### 4. Update", ("update_w1", "update_b1", "update_w2", "update_b2")),
    ("### 5. The loss after the step", ("loss_after",)),
]
"""The page's step by step, in order: under each heading a `text` block of explain's output showing these arrays."""

_ENTRY = re.compile(r"^(\w+) \(")
_NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")


def explain_output(*args: str) -> str:
    result = CliRunner().invoke(app, ["explain", str(SEED), *args])
    assert result.exit_code == 0, result.output
    return result.output


def explain_parts(output: str) -> list[str]:
    """explain's text output cut into the parts of `STEP_BY_STEP`, without blank lines at their ends. Every line
    goes into one part (the title and the [section] lines with the array after them); an array that the page
    does not place is an error, so a new line of output cannot go missing from the page."""
    owner = {name: i for i, (_, names) in enumerate(STEP_BY_STEP) for name in names}
    parts: list[list[str]] = [[] for _ in STEP_BY_STEP]
    pending: list[str] = []
    current: int | None = None
    for line in output.splitlines():
        entry = _ENTRY.match(line)
        if entry:
            assert entry[1] in owner, f"explain prints {entry[1]!r}, which the page's step by step does not show"
            current = owner[entry[1]]
            parts[current] += pending
            pending = []
        if entry or (current is not None and line.startswith("    ")):
            assert current is not None
            parts[current].append(line)
        else:
            pending.append(line)
    assert not "".join(pending).strip(), f"lines after the last array: {pending}"
    return ["\n".join(part).strip("\n") + "\n" for part in parts]


def text_blocks() -> list[Block]:
    return [b for b in fenced_blocks(PAGE.read_text(encoding="utf-8")) if b.info == "text"]


def arrays_shown(text: str) -> dict[str, np.ndarray]:
    """The numbers under each `name (shape)` line of an explain excerpt, flattened."""
    pieces = re.split(r"^(\w+) \(", text, flags=re.M)[1:]
    return {
        name: np.array([float(t) for t in _NUMBER.findall(body.split("\n", 1)[1])])
        for name, body in zip(pieces[::2], pieces[1::2], strict=True)
    }


def test_how_it_works_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # Were anything tracked despite track=False, it would land here, not in the repository.
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.chdir(ROOT)
    before = {p.name for p in ROOT.iterdir()}

    namespace = run_markdown_python(PAGE)

    assert "one_step" in namespace and "wrong_way" in namespace  # every block ran, down to the last
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


def test_the_step_by_step_shows_explains_real_output_part_by_part() -> None:
    """Under each heading of the step by step, a `text` block that is that part of the command's output, verbatim,
    and nothing of the output left out."""
    output = explain_output()
    shown = text_blocks()
    assert [b.heading for b in shown] == [heading for heading, _ in STEP_BY_STEP], "a text block out of place"
    for block, expected, (heading, names) in zip(shown, explain_parts(output), STEP_BY_STEP, strict=True):
        assert block.text == expected, (
            f"docs/how-it-works.md line {block.line} ({heading}, {', '.join(names)}) is not what "
            f"`backprop explain experiments/seed.toml` prints; replace it with:\n{expected}"
        )
    assert [line for b in shown for line in b.text.splitlines() if line] == [x for x in output.splitlines() if x]


def test_every_number_of_the_step_by_step_is_the_lessons_equations() -> None:
    """The numbers of the page's text blocks against the lesson's equations in numpy, from the initial weights
    that `explain --format json` reports: not from the command's text, so a wrong explain fails here too."""
    document = json.loads(explain_output("--format", "json"))
    start = {e["name"]: np.array(e["values"]) for e in document["entries"] if e["section"] == "parameters"}
    x = np.array([[0, 1, 0], [1, 0, 1]], dtype=float)
    y = np.array([[1], [0]], dtype=float)
    expected = {**start, **lesson_step(start["w1"], start["b1"], start["w2"], start["b2"], x, y, 0.5)}
    assert document["lr"] == 0.5
    shown: dict[str, np.ndarray] = {}
    for block in text_blocks():
        shown |= arrays_shown(block.text)
    assert set(shown) == set(expected)
    for name, value in shown.items():  # six significant digits
        np.testing.assert_allclose(value, np.ravel(expected[name]), rtol=5e-6, atol=5e-7, err_msg=name)
    assert "lr 0.5" in text_blocks()[0].text.splitlines()[0]


def quoted_numbers(text: str) -> set[str]:
    return {m.lstrip("-") for m in re.findall(r"-?\d+\.\d+", text)}


def test_every_number_the_prose_quotes_is_in_a_checked_block() -> None:
    """A number in the page's sentences must be in explain's output shown on the page (checked above) or in the
    code of a python block (the blocks run, and assert the numbers they hold); comments do not count."""
    text = PAGE.read_text(encoding="utf-8")
    blocks = fenced_blocks(text)
    checked = set().union(*(quoted_numbers(b.text) for b in blocks if b.info == "text"))
    for b in blocks:
        if b.info == "python":
            checked |= quoted_numbers("\n".join(line.split("#", 1)[0] for line in b.text.splitlines()))
    lines = text.splitlines()
    inside = {i for b in blocks for i in range(b.line - 1, b.line + len(b.text.splitlines()) + 1)}
    prose = "\n".join(line for i, line in enumerate(lines) if i not in inside)
    missing = sorted(quoted_numbers(prose) - checked)
    assert not missing, f"docs/how-it-works.md quotes numbers no test checks: {missing}"
    assert {"0.239892", "0.194885", "0.233037", "0.241646", "0.817633", "0.285729"} <= quoted_numbers(prose)
