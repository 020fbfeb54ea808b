"""README.md: its experiment example is a valid experiment, and the commented-out options in it are too."""

from __future__ import annotations

import re
import tomllib

import pytest

from framework import Experiment
from framework.build import resolve
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
(EXAMPLE,) = re.findall(r"```toml\n(.*?)```", README, re.S)
REGISTRY = Registry.from_host(create_plugin_manager(strict=True))


def test_the_readme_experiment_resolves() -> None:
    experiment = Experiment.from_dict(tomllib.loads(EXAMPLE))
    resolved = resolve(experiment, REGISTRY)
    assert resolved.model.layers[0].component_params()["init"] == "auto"


@pytest.mark.parametrize(
    "line",
    [line for line in EXAMPLE.splitlines() if re.match(r"\s*# \{ (units|type) = ", line)],
    ids=lambda line: line.split("=")[1].split(",")[0].strip(" \"'"),
)
def test_every_commented_layer_of_the_readme_is_a_valid_layer(line: str) -> None:
    layer = tomllib.loads("layer = " + line.split("#", 1)[1].split("  #")[0].strip().rstrip(","))["layer"]
    data = tomllib.loads(EXAMPLE)
    data["model"]["layers"].insert(1, layer)
    resolve(Experiment.from_dict(data), REGISTRY)
