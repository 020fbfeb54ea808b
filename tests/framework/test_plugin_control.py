"""Disabling plugins before import, essential built-ins, broken plugins, unmarked hooks, call order."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework import Experiment, fit, hookimpl
from framework.cli import app
from framework.errors import PluginError
from framework.pluginmanager import ESSENTIAL_PLUGINS, create_plugin_manager, disabled_from_env
from framework.registry import Registry
from tests.helpers import EXPERIMENTS, xor_config
from tests.plugin_env import fake_distribution, fake_site

EXPLODES = "raise RuntimeError('boom at import')\n"
RECORDER = """
from framework import hookimpl
CALLS = []

@hookimpl
def after_epoch(epoch):
    CALLS.append(("{name}", epoch))
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from fake_site(tmp_path, monkeypatch, ("ctl_", "backprop_local_plugins"))


def test_a_disabled_plugin_is_never_imported(site: Path) -> None:
    fake_distribution(site, "backprop-explodes", "ctl_explodes", EXPLODES)
    host = create_plugin_manager(disabled=["ctl_explodes"], strict=True)  # strict: an import would fail
    assert host.infos["ctl_explodes"].status == "disabled"
    assert host.infos["ctl_explodes"].source == "backprop-explodes 1.2"
    assert "ctl_explodes" not in sys.modules


def test_disabling_works_from_the_environment_the_experiment_and_the_command_line(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(site, "backprop-explodes", "ctl_explodes", EXPLODES)
    config = xor_config()
    # The experiment's own list.
    result = fit(Experiment.from_dict({**config, "disabled_plugins": ["ctl_explodes"]}), strict_plugins=True)
    assert len(result.history) == 3
    # The environment variable.
    monkeypatch.setenv("BACKPROP_DISABLE_PLUGINS", " progress, ctl_explodes ")
    assert disabled_from_env() == ["progress", "ctl_explodes"]
    assert len(fit(Experiment.from_dict(config), strict_plugins=True).history) == 3
    monkeypatch.delenv("BACKPROP_DISABLE_PLUGINS")
    # The command line.
    path = tmp_path / "xor.json"
    path.write_text(json.dumps(config))
    args = ["run", str(path), "--no-track", "-q", "--strict-plugins"]
    assert CliRunner().invoke(app, [*args, "--disable-plugin", "ctl_explodes"]).exit_code == 0
    assert "ctl_explodes" not in sys.modules
    failed = CliRunner().invoke(app, args)
    assert failed.exit_code == 2
    assert "plugin 'ctl_explodes' (backprop-explodes 1.2) failed to load: RuntimeError: boom at import" in failed.output
    assert "Traceback" not in failed.output


def test_a_broken_plugin_is_reported_and_skipped_without_strict(site: Path, tmp_path: Path) -> None:
    fake_distribution(site, "backprop-explodes", "ctl_explodes", EXPLODES)
    path = tmp_path / "xor.json"
    path.write_text(json.dumps(xor_config()))
    result = CliRunner().invoke(app, ["run", str(path), "--no-track", "-q"])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(app, ["plugins", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    entry = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "ctl_explodes")
    assert entry["status"] == "error" and entry["error"] == "RuntimeError: boom at import"
    assert entry["source"] == "backprop-explodes 1.2"
    check = CliRunner().invoke(app, ["plugins", "check"])
    assert check.exit_code == 2
    assert "plugin 'ctl_explodes' (backprop-explodes 1.2): RuntimeError: boom at import" in check.output


@pytest.mark.parametrize("name", sorted(ESSENTIAL_PLUGINS))
def test_essential_plugins_cannot_be_disabled_and_say_why(name: str) -> None:
    with pytest.raises(PluginError, match=rf"plugin '{name}' is essential and cannot be disabled: it registers"):
        create_plugin_manager(disabled=[name])
    result = CliRunner().invoke(app, ["run", str(EXPERIMENTS / "xor.toml"), "--disable-plugin", name])
    assert result.exit_code == 2
    assert f"error: plugin '{name}' is essential and cannot be disabled" in result.output


def test_every_other_builtin_can_be_disabled_and_a_typo_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    host = create_plugin_manager(disabled=["optimizers", "trackin"], strict=True)
    assert host.infos["optimizers"].status == "disabled"
    assert "sgd" not in Registry.from_host(host).names("optimizer")
    assert "no plugin named 'trackin' to disable; did you mean 'tracking'?" in caplog.text


def test_a_failing_registration_hook_names_plugin_and_hook_and_is_skipped_unless_strict(site: Path) -> None:
    body = "from framework import hookimpl\n@hookimpl\ndef register_losses():\n    raise KeyError('oops')\n"
    fake_distribution(site, "backprop-badreg", "ctl_badreg", body)
    host = create_plugin_manager()
    registry = Registry.from_host(host)
    assert "mse" in registry.names("loss")
    assert host.infos["ctl_badreg"].status == "error"
    assert not host.pm.has_plugin("ctl_badreg") or host.pm.get_plugin("ctl_badreg") is None
    with pytest.raises(PluginError, match=r"plugin 'ctl_badreg' failed in hook register_losses: KeyError"):
        Registry.from_host(create_plugin_manager(strict=True))


def test_a_function_named_like_a_hook_without_hookimpl_gets_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Forgetful:
        def after_epoch(self, epoch: int) -> None: ...

        @hookimpl
        def before_epoch(self, epoch: int) -> None: ...

    with caplog.at_level(logging.WARNING):
        host = create_plugin_manager([Forgetful()], entry_points=False)
    assert host.warnings == [
        "plugin 'Forgetful' (object): method Forgetful.after_epoch is named like a hook but not marked with "
        "@hookimpl, so it is never called; help: decorate it with @framework.hookimpl, or rename it"
    ]
    assert "Forgetful.after_epoch" in caplog.text


def test_hook_call_order_is_fixed_by_entry_point_names_and_shown(site: Path) -> None:
    # Written in the opposite order to their names: the order must not come from the file system.
    for name in ("ctl_zeta", "ctl_alpha", "ctl_mid"):
        fake_distribution(site, f"backprop-{name}", name, RECORDER.format(name=name))
    host = create_plugin_manager(strict=True)
    order = host.call_order("after_epoch")
    assert order == ["ctl_zeta", "ctl_mid", "ctl_alpha"]  # registered by name, called last-registered first
    fit(Experiment.from_dict(xor_config(training={"epochs": 1, "batch_size": 4})), strict_plugins=True)
    calls = [sys.modules[name].CALLS for name in order]  # type: ignore[attr-defined]
    assert all(c == [(name, 0)] for c, name in zip(calls, order, strict=True))
    listed = CliRunner().invoke(app, ["plugins", "list", "--json"])
    assert json.loads(listed.stdout)["hook_order"]["after_epoch"] == order
    table = CliRunner().invoke(app, ["plugins", "list", "--hooks"], terminal_width=200)
    assert "ctl_zeta, ctl_mid, ctl_alpha" in table.output


def test_an_error_in_a_hook_names_the_plugin_and_the_hook() -> None:
    class Faulty:
        @hookimpl
        def after_epoch(self, epoch: int) -> None:
            raise ValueError("bad epoch")

    with pytest.raises(ValueError, match="bad epoch") as info:
        fit(Experiment.from_dict(xor_config()), callbacks=[Faulty()])
    assert any("hook after_epoch of plugin" in note and "Faulty" in note for note in info.value.__notes__)


def test_plugin_adds_a_module_or_file_for_one_run(tmp_path: Path, site: Path) -> None:
    source = (
        "import numpy as np\nfrom typing import ClassVar\nfrom framework import Activation, hookimpl\n"
        "class Cube(Activation):\n    '''f(z) = z**3.'''\n    name: ClassVar[str] = 'cube'\n"
        "    def forward(self, z, out=None):\n        return np.power(z, 3, out=out)\n"
        "    def backward(self, z, a, grad):\n        return grad * 3 * z * z\n"
        "@hookimpl\ndef register_activations():\n    return [Cube]\n"
    )
    (tmp_path / "ctl_cube.py").write_text(source)
    args = ["run", str(EXPERIMENTS / "xor.toml"), "--no-track", "-q", "--set", "training.epochs=2"]
    args += ["--set", "model.layers.0.activation=cube"]
    assert CliRunner().invoke(app, args).exit_code == 2  # unknown without the plugin
    result = CliRunner().invoke(app, [*args, "--plugin", str(tmp_path / "ctl_cube.py")])
    assert result.exit_code == 0, result.output
    (site / "ctl_cube_module.py").write_text(source)
    assert CliRunner().invoke(app, [*args, "--plugin", "ctl_cube_module"]).exit_code == 0
