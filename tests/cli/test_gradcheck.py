"""`backprop gradcheck`: passes on every shipped experiment, names the component of a wrong gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework.cli import app
from tests.helpers import ROOT

EXPERIMENTS = sorted((ROOT / "experiments").glob("*.toml"))

BAD_PLUGIN = '''
import numpy as np
from framework import Activation, hookimpl


class WrongTanh(Activation):
    """tanh with a wrong derivative: 1 - a instead of 1 - a**2."""

    name = "wrong_tanh"

    def forward(self, z, out=None):
        return np.tanh(z, out=out)

    def backward(self, z, a, grad):
        grad *= 1 - a
        return grad


@hookimpl
def register_activations():
    return [WrongTanh]
'''


@pytest.mark.parametrize("config", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_gradcheck_passes_on_every_experiment(config: Path) -> None:
    result = CliRunner().invoke(app, ["gradcheck", str(config)])
    assert result.exit_code == 0, result.output
    assert "ok: every gradient matches" in result.output
    assert "deriv_w1" in result.output and "deriv_input" in result.output


def test_a_wrong_activation_fails_and_is_named(tmp_path: Path) -> None:
    (tmp_path / "wrong.py").write_text(BAD_PLUGIN)
    config = tmp_path / "seed.toml"
    text = (ROOT / "experiments" / "seed.toml").read_text().replace('activation = "tanh"', 'activation = "wrong_tanh"')
    config.write_text('plugins = ["wrong.py"]\n' + text)
    result = CliRunner().invoke(app, ["gradcheck", str(config)])
    assert result.exit_code == 1, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  deriv_")}
    assert lines["deriv_w2"].endswith("ok") and lines["deriv_b2"].endswith("ok")  # above the wrong layer: right
    assert lines["deriv_w1"].endswith("FAIL") and lines["deriv_b1"].endswith("FAIL")
    assert "activation 'wrong_tanh' (plugin" in result.output and "wrong" in result.output
    assert "layer 1: 'dense'" in result.output and "loss" not in result.output.split("error:")[1]


def test_the_tolerance_decides(tmp_path: Path) -> None:
    seed = str(ROOT / "experiments" / "seed.toml")
    assert CliRunner().invoke(app, ["gradcheck", seed, "--tolerance", "1e-30"]).exit_code == 1
    assert CliRunner().invoke(app, ["gradcheck", seed, "--tolerance", "1e-4"]).exit_code == 0


def test_a_config_that_does_not_build_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gradcheck", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "not found" in result.output


BAD_LOSS = '''
import numpy as np
from framework import Loss, hookimpl


class HalfMse(Loss):
    """Mean squared error whose gradient forgets the 2."""

    name = "half_wrong_mse"

    def value(self, outputs, targets):
        return float(np.mean((outputs - targets) ** 2))

    def gradient(self, outputs, targets):
        return (outputs - targets) / outputs.size


@hookimpl
def register_losses():
    return [HalfMse]
'''


def test_a_wrong_loss_fails_every_array_and_is_named(tmp_path: Path) -> None:
    (tmp_path / "badloss.py").write_text(BAD_LOSS)
    config = tmp_path / "seed.toml"
    text = (ROOT / "experiments" / "seed.toml").read_text().replace('name = "mse"', 'name = "half_wrong_mse"')
    config.write_text('plugins = ["badloss.py"]\n' + text)
    result = CliRunner().invoke(app, ["gradcheck", str(config)])
    assert result.exit_code == 1, result.output
    assert all(line.endswith("FAIL") for line in result.output.splitlines() if line.startswith("  deriv_"))
    assert "loss 'half_wrong_mse' (plugin 'badloss')" in result.output
