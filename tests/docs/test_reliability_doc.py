"""docs/reliability.md stays true: every test it names exists, every command it shows has those options."""

from __future__ import annotations

import ast
import re
import shlex

import typer

from framework.cli import app
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "reliability.md"


def test_every_test_named_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", PAGE.read_text())
    assert len(named) >= 15
    for path, function in named:
        tree = ast.parse((ROOT / path).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert function in functions, f"{path}::{function}"


def test_every_runs_command_exists_with_its_options() -> None:
    runs = typer.main.get_command(app).commands["runs"]  # type: ignore[attr-defined]
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    seen = set()
    for line in "\n".join(blocks).splitlines():
        words = shlex.split(line.split(" #")[0])
        if words[:2] != ["backprop", "runs"]:
            continue
        command = runs.commands[words[2]]
        options = {opt for param in command.params for opt in param.opts}
        assert all(word in options for word in words[3:] if word.startswith("-")), line
        seen.add(words[2])
    assert seen == {"list", "repair", "sync"}
