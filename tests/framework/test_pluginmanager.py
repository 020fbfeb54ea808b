"""Discovery: entry points of installed distributions, .py files next to a config, and loading errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework import Experiment, fit, hookimpl
from framework.errors import PluginError
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from tests.helpers import xor_config

PLUGIN_SOURCE = """
from typing import ClassVar
import numpy as np
from framework import Activation, hookimpl

class Cube(Activation):
    '''f(z) = z**3; f'(z) = 3 z**2.'''
    name: ClassVar[str] = "{name}"

    def forward(self, z, out=None):
        return np.power(z, 3, out=out)

    def backward(self, z, a, grad):
        return grad * 3 * z * z

@hookimpl
def register_activations():
    return [Cube]
"""


def fake_distribution(root: Path, dist: str, module: str, body: str, entry_name: str | None = None) -> None:
    """An installed distribution in `root`: a module plus its dist-info with a `backprop` entry point."""
    (root / f"{module}.py").write_text(body)
    # The folder name holds the normalised name ('-' -> '_'): importlib.metadata reads the name up to the
    # first '-', so "backprop-x-1.2.dist-info" would pass for (and hide) backprop itself.
    info = root / f"{dist.replace('-', '_')}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[backprop]\n{entry_name or module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name.startswith(("cube_", "broken_", "backprop_local_plugins")):
            del sys.modules[name]


def test_an_installed_distribution_is_discovered_through_its_entry_point(site: Path) -> None:
    fake_distribution(site, "backprop-cube", "cube_plugin", PLUGIN_SOURCE.format(name="cube"))
    host = create_plugin_manager(strict=True)
    registry = Registry.from_host(host)
    assert registry.entries("activation")["cube"].plugin == "cube_plugin"
    assert host.infos["cube_plugin"].source == "backprop-cube 1.2"
    assert host.infos["cube_plugin"].hooks == ["register_activations"]


def test_a_plugin_that_fails_to_import_is_named_and_skipped_unless_strict(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_distribution(site, "backprop-broken", "broken_plugin", "raise RuntimeError('boom at import')\n")
    host = create_plugin_manager()
    info = host.infos["broken_plugin"]
    assert info.status == "error" and info.error == "RuntimeError: boom at import"
    assert "plugin 'broken_plugin' (backprop-broken 1.2) failed to load" in caplog.text
    assert "sgd" in Registry.from_host(host).names("optimizer")  # the rest still works
    with pytest.raises(PluginError, match=r"plugin 'broken_plugin' \(backprop-broken 1.2\) failed to load"):
        create_plugin_manager(strict=True)


def test_a_py_file_next_to_the_config_is_loaded_and_used(tmp_path: Path, site: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "cube_activation.py").write_text(PLUGIN_SOURCE.format(name="cube"))
    config = xor_config(plugins=["cube_activation.py"])
    config["model"]["layers"][0]["activation"] = "cube"
    path = folder / "exp.json"
    path.write_text(__import__("json").dumps(config))
    result = fit(Experiment.from_file(path))
    assert len(result.history) == 3
    assert result.model.layers[0].activation.name == "cube"  # type: ignore[attr-defined]


def test_a_missing_plugin_file_or_module_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"plugin file 'nope\.py' not found"):
        create_plugin_manager(["nope.py"], base_dir=tmp_path)
    with pytest.raises(PluginError, match="plugin module 'no_such_module_xyz' not found"):
        create_plugin_manager(["no_such_module_xyz"])


def test_a_misspelt_hook_is_an_error_naming_the_plugin() -> None:
    class Typo:
        @hookimpl
        def after_epohc(self) -> None: ...

    with pytest.raises(PluginError, match=r"plugin 'Typo' .*after_epohc"):
        create_plugin_manager([Typo()], entry_points=False)


def test_an_argument_the_hook_does_not_have_is_an_error() -> None:
    class WrongArgs:
        @hookimpl
        def after_epoch(self, epoch: int, losses: dict[str, float]) -> None: ...

    with pytest.raises(PluginError, match="losses"):
        create_plugin_manager([WrongArgs()], entry_points=False)
