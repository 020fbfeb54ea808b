"""Running the ```python blocks of a Markdown page, so that documentation examples stay true."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")


class MarkdownBlockError(AssertionError):
    """A ```python block of a Markdown page raised; the message names the page, block number and line."""


class Block(NamedTuple):
    """A fenced block: the line of its opening fence, its info string, its text, and the heading above it."""

    line: int
    info: str
    text: str
    heading: str


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order, with the last heading (`#` line) outside a block above it.

    Blocks indented inside list items are dedented by their fence's indentation; the content of a block is never
    parsed (so a ```python line shown inside a ```` markdown example is not a block). An unclosed block is an
    error, not dropped.
    """
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = ""
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if lines[i].startswith("#"):
            heading = lines[i]
        i += 1
        if match is None:
            continue
        start, indent, fence = i, match["indent"], match["fence"]
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        while i < len(lines) and not close.match(lines[i]):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        if i == len(lines):
            raise ValueError(f"line {start}: the {fence}{match['info']} block is never closed")
        i += 1  # the closing fence
        blocks.append(Block(start, match["info"], "\n".join(body) + "\n", heading))
    return blocks


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown text, in order, as (line number of the opening fence, code).

    Only fences whose info string is exactly `python` count (see `fenced_blocks`).
    """
    return [(b.line, b.text) for b in fenced_blocks(text) if b.info == "python"]


def run_markdown_python(path: str | Path) -> dict[str, Any]:
    """Execute every ```python block of the page at `path`, in order, in one shared namespace.

    Later blocks see the names of earlier ones, as a reader running them in one session would. Returns
    the namespace. Relative paths inside the blocks resolve against the current directory (tests set it
    with `monkeypatch.chdir`). Raises `MarkdownBlockError` naming the block (1-based) and its line if a
    block raises, and if the page has no python block at all.
    """
    path = Path(path)
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    if not blocks:
        raise MarkdownBlockError(f"{path}: no ```python blocks found")
    namespace: dict[str, Any] = {"__name__": f"markdown:{path.stem}"}
    for number, (line, source) in enumerate(blocks, start=1):
        where = f"{path}: python block {number} of {len(blocks)} (line {line})"
        try:
            code = compile(source, f"<{where}>", "exec")
            exec(code, namespace)
        except Exception as error:
            raise MarkdownBlockError(f"{where} raised {type(error).__name__}: {error}") from error
    return namespace
