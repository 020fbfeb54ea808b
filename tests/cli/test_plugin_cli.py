"""Plugin sub-commands (loaded lazily), `validate`, `schema` and `new-plugin` on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework.cli import app
from tests.helpers import EXPERIMENTS
from tests.plugin_env import fake_distribution, fake_site

COMMAND_PLUGIN = """
from framework import hookimpl

@hookimpl
def register_commands(app):
    @app.command("hello")
    def hello(name: str = "world"):
        '''Say hello.'''
        print(f"hello {name}")

    @app.command("run")
    def run():
        '''Tries to replace a core command.'''
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from fake_site(tmp_path, monkeypatch, ("cli_",))


def test_a_plugin_command_runs_and_cannot_replace_a_core_command(site: Path) -> None:
    fake_distribution(site, "backprop-hello", "cli_hello", COMMAND_PLUGIN)
    result = CliRunner().invoke(app, ["hello", "--name", "there"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello there\n"
    listed = json.loads(CliRunner().invoke(app, ["plugins", "list", "--json"]).stdout)
    assert next(p for p in listed["plugins"] if p["name"] == "cli_hello")["commands"] == ["hello"]
    check = CliRunner().invoke(app, ["plugins", "check"])
    assert check.exit_code == 2
    assert "plugin 'cli_hello' adds a command 'run', which is a core command; skipped" in check.output
    assert CliRunner().invoke(app, ["no-such-command"]).exit_code == 2


def test_help_and_core_commands_import_no_plugin(site: Path) -> None:
    fake_distribution(site, "backprop-hello", "cli_hello", COMMAND_PLUGIN)
    code = (
        "import sys\nfrom framework.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(('plugins', 'cli_', 'mlflow'))))\n"
    )
    env = {"PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert "LOADED []" in done.stdout, done.stdout + done.stderr
    assert "hello" not in done.stdout.split("LOADED")[0]


def test_validate_checks_without_training(tmp_path: Path) -> None:
    ok = CliRunner().invoke(app, ["validate", str(EXPERIMENTS / "xor.toml")])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: ") and "model 3-" in ok.output and "loss " in ok.output
    quick = CliRunner().invoke(app, ["validate", str(EXPERIMENTS / "digits.toml"), "--no-data"])
    assert quick.exit_code == 0 and "data not loaded" in quick.output
    bad = CliRunner().invoke(app, ["validate", str(EXPERIMENTS / "digits.toml"), "--set", "optimizer.momentun=0.5"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        f"error: {EXPERIMENTS / 'digits.toml'}: optimizer.momentun: unknown key 'momentun'. Allowed: "
        + bad.output.split("Allowed: ")[1].split(". Did")[0]
        + ". Did you mean 'momentum'?"
    ]
    units = CliRunner().invoke(app, ["validate", str(EXPERIMENTS / "digits.toml"), "--set", "model.layers.1.units=3"])
    assert units.exit_code == 2 and "one output per class (10)" in units.output


def test_schema_lists_every_component_with_its_params(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--output", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    schema = json.loads((tmp_path / "s.json").read_text())
    optimizers = {v["properties"]["name"]["const"]: v for v in schema["properties"]["optimizer"]["oneOf"]}
    assert {"sgd", "momentum"} <= set(optimizers)
    momentum = optimizers["momentum"]["properties"]["momentum"]
    assert momentum["description"] and momentum["exclusiveMaximum"] == 1
    assert optimizers["momentum"]["additionalProperties"] is False
    layers = schema["properties"]["model"]["properties"]["layers"]["items"]["oneOf"]
    dense = next(v for v in layers if v["properties"]["type"]["const"] == "dense")
    assert "relu" in dense["properties"]["activation"]["oneOf"][0]["enum"] and "type" not in dense["required"]
    callbacks = schema["properties"]["callbacks"]["properties"]
    assert "patience" in callbacks["early_stopping"]["properties"] and "mlflow" not in callbacks
    data = {v["properties"]["name"]["const"]: v for v in schema["properties"]["data"]["oneOf"]}
    assert {"validation_split", "n_samples"} <= set(data["house_prices"]["properties"])


def test_every_shipped_experiment_matches_the_schema() -> None:
    # Without a JSON Schema validator installed, check what editors rely on: each section names a variant,
    # and every key of the section is a property of that variant.
    from framework.config import read_config_file

    schema = json.loads(CliRunner().invoke(app, ["schema"]).stdout)
    for path in sorted(EXPERIMENTS.glob("*.toml")):
        config = read_config_file(path)
        assert set(config) <= set(schema["properties"]), path
        for section in ("data", "loss", "optimizer"):
            variants = {v["properties"]["name"]["const"]: v for v in schema["properties"][section]["oneOf"]}
            variant = variants[config[section]["name"]]
            assert set(config[section]) <= set(variant["properties"]), (path, section)


def test_new_plugin_refuses_an_existing_folder_and_a_bad_kind(tmp_path: Path) -> None:
    args = ["new-plugin", "backprop-thing", "--kind", "loss", "--directory", str(tmp_path)]
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    assert CliRunner().invoke(app, [*args[:3], "layer", *args[4:]]).exit_code == 2
    assert sorted(p.name for p in (tmp_path / "backprop-thing").iterdir()) == [
        "README.md",
        "backprop_thing.py",
        "pyproject.toml",
        "tests",
    ]
