"""docs/plugins.md: every hook documented, snippets identical to the example package, and the package
itself installed, discovered through its entry point, listed, used in a run and tested with the kit."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import pytest

from framework import hookspecs
from tests.docs.markdown import python_blocks
from tests.helpers import ROOT
from tests.plugin_env import make_venv, pip_install_editable, run_in

GUIDE = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "docs" / "examples" / "backprop-huber"
HOOKS = {name: f for name, f in vars(hookspecs).items() if hasattr(f, "backprop_spec")}


def section_of(text: str, hook: str) -> str:
    match = re.search(rf"^#+ `{hook}`\n(?P<body>.*?)(?=^#+ |\Z)", text, flags=re.M | re.S)
    assert match is not None, f"docs/plugins.md has no section for the hook {hook!r}"
    return match["body"]


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_is_documented_with_its_arguments(hook: str) -> None:
    body = section_of(GUIDE.read_text(encoding="utf-8"), hook)
    for argument in inspect.signature(HOOKS[hook]).parameters:
        assert f"`{argument}`" in body, f"the section of {hook} does not mention its argument {argument!r}"


def test_the_reference_lists_no_hook_that_does_not_exist() -> None:
    documented = re.findall(r"^#### `(\w+)`", GUIDE.read_text(encoding="utf-8"), flags=re.M)
    assert sorted(documented) == sorted(HOOKS)


def test_the_guide_shows_the_example_package_as_it_is() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in EXAMPLE.rglob("*.py"))
    for line, block in python_blocks(GUIDE.read_text(encoding="utf-8")):
        assert block.strip() in sources, f"docs/plugins.md line {line}: the block differs from {EXAMPLE}"
    text = GUIDE.read_text(encoding="utf-8")
    assert (EXAMPLE / "huber.toml").read_text(encoding="utf-8").strip() in text
    pyproject = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(\[project\]\nname = \"backprop-huber\".*?)```", text, flags=re.S)
    assert toml is not None
    for line in toml[1].splitlines():
        assert line in pyproject.splitlines(), line


@pytest.mark.slow
def test_the_example_installs_is_listed_runs_and_passes_its_tests(tmp_path: Path) -> None:
    package = tmp_path / "backprop-huber"  # a copy: installing writes metadata next to the sources
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    python = make_venv(tmp_path / "venv")
    pip_install_editable(python, package)
    cli = ("-m", "framework.cli")

    listed = run_in(python, *cli, "plugins", "list", "--json", cwd=package)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    huber = plugins["huber"]
    assert huber["source"] == "backprop-huber 0.1.0" and huber["version"] == "0.1.0"
    assert huber["status"] == "active" and huber["distribution"] == "backprop-huber"
    assert huber["hooks"] == ["register_commands", "register_losses"]
    assert huber["components"] == {"loss": ["huber"]} and huber["commands"] == ["huber-table"]
    for builtin in ("activations", "layers", "losses", "optimizers", "datasets", "metrics", "tracking"):
        assert plugins[builtin]["version"] and plugins[builtin]["status"] == "active"

    assert run_in(python, *cli, "plugins", "check", cwd=package).returncode == 0
    table = run_in(python, *cli, "huber-table", "--delta", "1", cwd=package)
    assert table.returncode == 0, table.stderr
    assert "r=+3.0  loss=2.5000  grad=+1.0000" in table.stdout
    assert run_in(python, *cli, "validate", "huber.toml", cwd=package).returncode == 0
    run = run_in(python, *cli, "run", "huber.toml", "--no-track", "-q", "--set", "training.epochs=3", cwd=package)
    assert run.returncode == 0, run.stderr
    assert "completed 3 epochs" in run.stdout
    disabled = run_in(python, *cli, "run", "huber.toml", "--no-track", "--disable-plugin", "huber", cwd=package)
    assert disabled.returncode == 2 and "unknown loss 'huber'" in disabled.stderr

    tests = run_in(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
