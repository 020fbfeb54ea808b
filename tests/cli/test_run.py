"""`backprop run` end to end, with tracking into a temporary MLflow store checked through MlflowClient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework.cli import app
from tests.helpers import EXPERIMENTS

BACKPROP = [sys.executable, "-m", "framework.cli"]


def backprop(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*BACKPROP, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def run_id_of(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("run id: ")]
    assert lines, stdout
    return lines[-1].removeprefix("run id: ").strip()


def check_tracked_run(store: str, run_id: str, epochs: int, metrics: set[str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.name"] in {"sgd", "momentum"}
    assert "model.layers.0.units" in run.data.params
    for key in metrics:
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(range(epochs)), key
    local = client.download_artifacts(
        run_id, "config.json", dst_path=str(Path(store.removeprefix("sqlite:///")).parent)
    )
    config = json.loads(Path(local).read_text())
    assert config["optimizer"]["name"] == run.data.params["optimizer.name"]


@pytest.mark.slow
def test_xor_learns_and_is_tracked(store: str, tmp_path: Path) -> None:
    done = backprop("run", str(EXPERIMENTS / "xor.toml"), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # The predictions table: every prediction on the right side of 0.5.
    rows = [line for line in done.stdout.splitlines() if line.count("│") == 4 and "input" not in line]
    assert len(rows) == 4, done.stdout
    for row in rows:
        _, _inputs, target, prediction, _ = (cell.strip() for cell in row.split("│"))
        assert (float(prediction) > 0.5) == (target == "1"), row
    check_tracked_run(store, run_id_of(done.stdout), 2000, {"train_loss", "train_accuracy"})


@pytest.mark.slow
def test_digits_reaches_095_and_is_tracked(store: str, tmp_path: Path) -> None:
    done = backprop("run", str(EXPERIMENTS / "digits.toml"), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    val_accuracy = next(float(line.split("│")[2]) for line in done.stdout.splitlines() if "│ val_accuracy" in line)
    assert val_accuracy >= 0.95
    run_id = run_id_of(done.stdout)
    from mlflow import MlflowClient

    epochs = len(MlflowClient(tracking_uri=store).get_metric_history(run_id, "val_loss"))
    assert epochs >= 5
    check_tracked_run(store, run_id, epochs, {"train_loss", "val_loss", "train_accuracy", "val_accuracy"})


def test_no_track_creates_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["run", str(EXPERIMENTS / "xor.toml"), "--no-track", "-q"])
    assert result.exit_code == 0, result.output
    assert "run id: (not tracked)" in result.output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_CASES = {
    "unknown key": ("[training]\nepoch = 3\n", [], "training.epoch: unknown key 'epoch'"),
    "wrong type": ('[training]\nepochs = "ten"\n', [], "training.epochs"),
    "unknown optimiser": ("", ["optimizer.name=adamm"], "unknown optimizer 'adamm'. Available: "),
    "unknown optimiser param": ("", ["optimizer.momentun=0.5"], "Did you mean 'momentum'?"),
    "negative learning rate": ("", ["optimizer.lr=-1"], "optimizer.lr"),
    "unknown activation": ("", ["model.layers.0.activation=rleu"], "unknown activation 'rleu'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_configs_exit_2_with_one_clear_line(case: str, tmp_path: Path) -> None:
    extra, overrides, fragment = BAD_CASES[case]
    base = (EXPERIMENTS / "digits.toml").read_text()
    # Later TOML tables cannot repeat earlier ones, so rewrite the [training] table for those cases.
    if extra.startswith("[training]"):
        base = base.replace("[training]\nepochs = 30\n", extra)
    path = write(tmp_path, "exp.toml", base)
    args = ["run", str(path), "--no-track", "-q"] + [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_unknown_optimiser_lists_the_available_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", str(EXPERIMENTS / "digits.toml"), "--set", "optimizer.name=adamm", "--no-track"]
    )
    assert result.exit_code == 2
    assert "adamm" in result.output and "momentum" in result.output and "sgd" in result.output


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: config file {str(tmp_path / 'nope.toml')!r} not found"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--debug", "run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "Traceback" in result.output


def test_help_does_not_import_mlflow_or_plugins() -> None:
    code = (
        "import sys\n"
        "from framework.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mlflow', 'sklearn', 'plugins.tracking', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
    assert "run" in done.stdout and "plugins" in done.stdout


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == "backprop 0.1.0"


def test_plugins_lists_every_builtin_with_its_components() -> None:
    result = CliRunner().invoke(app, ["plugins"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("activations", "datasets", "losses", "optimizers", "metrics", "tracking", "early_stopping"):
        assert name in result.output
    assert "optimizer: momentum, sgd" in result.output
    assert "backprop 0.1.0" in result.output
