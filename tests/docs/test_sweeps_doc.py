"""docs/sweeps.md stays true: its commands use options that exist with values that parse, its TOML validates."""

from __future__ import annotations

import re
import shlex
import tomllib

import typer

from framework.cli import app
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from framework.sweep import Distribution, SweepDefinition, parse_grid
from framework.sweep_study import PRUNERS
from tests.helpers import ROOT

PAGE = ROOT / "docs" / "sweeps.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


def sweep_commands() -> list[list[str]]:
    commands = []
    for block in blocks("bash"):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            words = shlex.split(line.split(" #")[0])
            if words[:2] == ["backprop", "sweep"]:
                commands.append(words[2:])
    return commands


def test_every_sweep_command_uses_real_options_and_values_that_parse() -> None:
    command = typer.main.get_command(app).commands["sweep"]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in param.opts}
    registry = Registry.from_host(create_plugin_manager())
    commands = sweep_commands()
    assert len(commands) >= 4
    used = set()
    for words in commands:
        assert (ROOT / words[0]).exists(), words[0]
        pairs = zip(words[1:], [*words[2:], ""], strict=True)
        for word, value in pairs:
            if not word.startswith("-"):
                continue
            assert word in options, f"{word} is not an option of backprop sweep"
            used.add(word)
            if word in ("--param", "-p"):
                key, _, text = value.partition("=")
                Distribution.parse(key, text)
            elif word in ("--grid", "-g"):
                parse_grid([value])
            elif word == "--sampler":
                assert value in registry.names("sampler")
            elif word == "--prune":
                assert value in PRUNERS
    assert {"--sampler", "--trials", "--prune", "--executor", "--address", "--param", "--grid"} <= used


def test_the_experiment_file_example_is_a_valid_sweep_section() -> None:
    (example,) = [b for b in blocks("toml") if "[sweep]" in b]
    section = tomllib.loads(example)["sweep"]
    definition = SweepDefinition.model_validate(section)
    assert definition.sampler == "tpe" and isinstance(definition.prune, dict)
    assert PRUNERS[definition.prune["name"]].model_validate({k: v for k, v in definition.prune.items() if k != "name"})


def test_every_built_in_sampler_and_pruner_is_documented() -> None:
    text = PAGE.read_text()
    registry = Registry.from_host(create_plugin_manager())
    for name in [*registry.names("sampler"), *PRUNERS]:
        assert f"`{name}`" in text, name
