"""`backprop new-plugin`: the package of every kind installs with `pip install -e` and passes its own tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from framework.scaffold import KINDS, names_for, write_plugin
from framework.testing import check_plugin
from tests.plugin_env import make_venv, pip_install_editable, run_in


def test_names_are_derived_from_the_distribution_name() -> None:
    assert names_for("backprop-huber") == ("backprop-huber", "backprop_huber", "huber", "Huber")
    assert names_for("My.Plugin-x") == ("My.Plugin-x", "my_plugin_x", "my_plugin_x", "MyPluginX")


@pytest.mark.parametrize("kind", KINDS)
def test_the_worked_example_passes_the_kit(kind: str, tmp_path: Path) -> None:
    target = write_plugin(tmp_path, f"backprop-sample-{kind}", kind)
    module_name = f"backprop_sample_{kind}"
    spec = importlib.util.spec_from_file_location(module_name, target / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        check_plugin(module)
    finally:
        del sys.modules[module_name]


@pytest.mark.slow
def test_every_kind_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    packages = [write_plugin(tmp_path, f"backprop-new-{kind}", kind) for kind in KINDS]
    python = make_venv(tmp_path / "venv")
    pip_install_editable(python, *packages)
    for package in packages:
        done = run_in(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
        assert done.returncode == 0, f"{package.name}:\n{done.stdout}\n{done.stderr}"
        assert "3 passed" in done.stdout, done.stdout
