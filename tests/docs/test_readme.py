"""README.md: its experiment example is a valid experiment, and the commented-out options in it are too."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

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


def test_the_readme_data_at_scale_commands_run(tmp_path: Path) -> None:
    # The README's two lines as a user types them, at 10^4 rows instead of 10^6 (the same code, faster).
    block = README.split("Data at scale:")[1].split("```bash\n")[1].split("```")[0]
    make, run = (line.split("  #")[0].strip() for line in block.strip().splitlines())
    assert make.startswith("python experiments/make_table.py big.csv --rows 1000000")
    assert run.startswith("backprop run experiments/scale/big.toml --set data.path=$PWD/big.csv")
    env = {**os.environ, "PWD": str(tmp_path)}
    made = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "make_table.py"), *shlex.split(make)[2:-1], "10000"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert len((tmp_path / "big.csv").read_text().splitlines()) == 10_001
    args = [
        a.replace("$PWD", str(tmp_path)).replace("experiments/", f"{ROOT}/experiments/") for a in shlex.split(run)[2:]
    ]
    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", "run", *args], cwd=tmp_path, capture_output=True, text=True,
        env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    losses = [float(v) for v in re.findall(r"val_loss=([\d.]+)", done.stdout + done.stderr)]
    assert len(losses) == 2 and losses[-1] < losses[0]  # it learns the generated relation
