"""docs/architecture.md stays true: the paths it names exist and its import rules hold."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAP = (ROOT / "docs" / "architecture.md").read_text()


def imported_modules(folder: Path) -> dict[Path, set[str]]:
    """Every module a package's files import (anywhere in the file), by file."""
    found: dict[Path, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[path] = names
    return found


def test_every_path_the_map_names_exists() -> None:
    paths = set(re.findall(r"`((?:framework|plugins|tests|benchmarks|experiments|docs)/[\w/.]*)`", MAP))
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_core_never_imports_the_plugins() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in names if n == "plugins" or n.startswith("plugins."))
        for path, names in imported_modules(ROOT / "framework").items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def guarded_imports(path: Path) -> set[str]:
    """The modules a file imports inside `try: ... except ImportError:` (optional, with a fallback)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"} for h in node.handlers
        ):
            for inner in node.body:
                if isinstance(inner, ast.ImportFrom) and inner.module:
                    names.add(inner.module)
                elif isinstance(inner, ast.Import):
                    names |= {alias.name for alias in inner.names}
    return names


def test_the_functional_formulas_need_only_numpy() -> None:
    for path, names in imported_modules(ROOT / "framework" / "functional").items():
        required = names - guarded_imports(path)
        tops = {n.split(".")[0] for n in required if not n.startswith("framework.functional")}
        outside = tops - set(sys.stdlib_module_names) - {"numpy"}
        assert not outside, f"{path.name} imports {sorted(outside)}: a saved model must load with numpy alone"
