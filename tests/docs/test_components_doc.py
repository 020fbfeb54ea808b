"""docs/components/: the reference of every built-in component, generated from the code and kept current."""

from __future__ import annotations

from importlib.metadata import distribution

from typer.testing import CliRunner

from framework.cli import app
from framework.pluginmanager import create_plugin_manager
from framework.reference import KIND_TITLES, reference_pages
from framework.registry import Registry
from tests.helpers import ROOT

FOLDER = ROOT / "docs" / "components"


def builtin_plugins() -> list[str]:
    """The plugins that backprop itself ships: the entry points of its own distribution."""
    return [ep.name for ep in distribution("backprop").entry_points if ep.group == "backprop"]


def test_the_pages_are_the_reference_of_the_builtins() -> None:
    registry = Registry.from_host(create_plugin_manager(strict=True))
    expected = reference_pages(registry, builtin_plugins(), title="Built-in components")
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in FOLDER.glob("*.md")}
    assert on_disk == expected, (
        "docs/components/ is out of date; regenerate it with `backprop plugins reference --builtin -o docs/components`"
    )


def test_every_builtin_component_is_documented_with_its_params() -> None:
    registry = Registry.from_host(create_plugin_manager(strict=True))
    builtins = set(builtin_plugins())
    for kind, (heading, _) in KIND_TITLES.items():
        page = FOLDER / f"{heading.lower()}.md"
        entries = {n: e for n, e in registry.entries(kind).items() if e.plugin in builtins}
        if not entries:
            continue
        text = page.read_text(encoding="utf-8")
        for name, entry in entries.items():
            assert f"## `{name}`" in text, f"{kind} {name} is not on {page.name}"
            assert (entry.cls.__doc__ or "").strip().splitlines()[0] in text, f"{kind} {name}: its rule is missing"
            for param in entry.cls.Params.model_fields:
                assert f"| `{param}` |" in text, f"{kind} {name}: param {param} is not on {page.name}"


def test_the_command_prints_a_plugins_components_only(tmp_path: object) -> None:
    done = CliRunner().invoke(app, ["plugins", "reference", "--only", "initializers"])
    assert done.exit_code == 0, done.output
    assert "## `he_normal`" in done.output and "## `relu`" not in done.output
    done = CliRunner().invoke(app, ["plugins", "reference", "--only", "no_such_plugin"])
    assert done.exit_code == 2 and "no plugin named 'no_such_plugin'" in done.output
