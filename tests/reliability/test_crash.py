"""Nothing lost when the process dies (issue 19): SIGKILL at any moment, damaged checkpoints, stale runs.

Real `backprop run` processes on a SQLite store in the test's folder, killed with SIGKILL; `runs list` and
`runs repair` through the CLI; the oracle for the weights is an uninterrupted run of the same experiment.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.cli import app
from framework.serialize import load_arrays

BACKPROP = [sys.executable, "-m", "framework.cli"]
EPOCHS = 6
EXPERIMENT = f"""\
name = "crash"
seed = 3

[data]
name = "digits"
validation_split = 0.2

[model]
layers = [{{ units = 16, activation = "relu" }}, {{ units = 10 }}]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[training]
epochs = {EPOCHS}
batch_size = 8
checkpoint_every = 1
"""


def env_of(root: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}


def backprop(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BACKPROP, *args], cwd=root, env=env_of(root), capture_output=True, text=True, timeout=timeout, check=False
    )


def runs_in(root: Path) -> list[tuple[str, str]]:
    """(run id, status) of every run of the store, read with sqlite3 (an independent reader)."""
    import sqlite3

    if not (root / "mlflow.db").exists():
        return []
    connection = sqlite3.connect(root / "mlflow.db")
    try:
        return [(r, s) for r, s in connection.execute("SELECT run_uuid, status FROM runs ORDER BY start_time")]
    except sqlite3.OperationalError:  # killed while MLflow was creating the schema
        return []
    finally:
        connection.close()


def steps_of(root: Path, run_id: str, key: str) -> list[int]:
    import sqlite3

    connection = sqlite3.connect(root / "mlflow.db")
    try:
        rows = connection.execute("SELECT step FROM metrics WHERE run_uuid = ? AND key = ?", (run_id, key))
        return sorted(step for (step,) in rows)
    finally:
        connection.close()


def final_weights(root: Path, run_id: str) -> dict[str, np.ndarray]:
    return load_arrays(root / "checkpoints" / "crash" / run_id / "model" / "weights.npz")


def cli(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store that already holds the experiment (so every run writes it directly, as the second run of a user
    does), and the final weights of an uninterrupted run in its checkpoints (the oracle)."""
    root = tmp_path_factory.mktemp("template")
    (root / "exp.toml").write_text(EXPERIMENT)
    assert backprop(root, "run", "exp.toml", "-q", "--set", "training.epochs=1").returncode == 0
    done = backprop(root, "run", "exp.toml", "-q")
    assert done.returncode == 0, done.stderr
    return root


def assert_same(weights: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(weights) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(weights[key], value)  # bitwise: same dtype, same values


def wait_for(process: subprocess.Popen[bytes], condition: Callable[[], object], timeout: float = 60) -> None:
    """Poll `condition` every 2 ms while `process` lives (a moment that never comes: the process has ended)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.002)


def moments(root: Path) -> list[tuple[str, Callable[[], object]]]:
    """Twenty moments to kill at: the start-up, the run's creation, inside and after each checkpoint write, the
    final model's save and the logging after it."""
    checkpoints = root / "checkpoints" / "crash"
    started = time.monotonic

    def after(seconds: float) -> Callable[[], object]:
        t0 = started()
        return lambda: started() - t0 >= seconds

    def running() -> bool:
        return any(status == "RUNNING" for _, status in runs_in(root))

    def writing(epoch: int) -> Callable[[], object]:
        return lambda: list(checkpoints.glob(f"*/.epoch-{epoch:04d}.*"))

    def written(epoch: int) -> Callable[[], object]:
        return lambda: list(checkpoints.glob(f"*/epoch-{epoch:04d}/state.json"))

    def model_saved() -> bool:
        return bool(list(checkpoints.glob("*/model/weights.npz")))

    found: list[tuple[str, Callable[[], object]]] = [("imports", after(0.3)), ("run created", running)]
    found += [(f"writing epoch {e}", writing(e)) for e in range(1, EPOCHS + 1)]
    found += [(f"after epoch {e}", written(e)) for e in range(1, EPOCHS + 1)]
    found += [("final model saved", model_saved)]
    found += [(f"final logging +{d} s", lambda d=d: model_saved() and time.sleep(d) is None) for d in (0.02, 0.1)]
    found += [(f"at {t} s", after(t)) for t in (0.8, 1.2, 1.6)]
    return found


@pytest.mark.slow
def test_sigkill_at_twenty_moments_leaves_a_repairable_resumable_run(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (reference_id, _) = runs_in(template)[-1]
    expected = final_weights(template, reference_id)
    phases: list[str] = []
    for moment in range(20):
        root = tmp_path / f"kill{moment}"
        root.mkdir()
        (root / "exp.toml").write_text(EXPERIMENT)
        shutil.copy(template / "mlflow.db", root / "mlflow.db")  # its artifacts go to the template's mlruns
        before = {run_id for run_id, _ in runs_in(root)}
        process = subprocess.Popen(
            [*BACKPROP, "run", "exp.toml", "-q"],
            cwd=root,
            env=env_of(root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        name, condition = moments(root)[moment]
        wait_for(process, condition)
        process.send_signal(signal.SIGKILL)
        process.wait()
        new = [(r, s) for r, s in runs_in(root) if r not in before]
        listing = cli(root, monkeypatch, "runs", "list")
        if not new:  # killed before the run was created: nothing to repair, the experiment runs again
            phases.append(f"{name}: no run yet")
            assert "STALE" not in listing
            assert backprop(root, "run", "exp.toml", "-q").returncode == 0
            (run_id, status) = runs_in(root)[-1]
            assert status == "FINISHED"
            assert_same(final_weights(root, run_id), expected)
            continue
        ((run_id, status),) = new
        if status == "FINISHED":  # killed after the run ended
            phases.append(f"{name}: after the end")
            assert "STALE" not in listing
            assert_same(final_weights(root, run_id), expected)
            continue
        assert status == "RUNNING"
        assert "STALE" in listing, listing
        repaired = cli(root, monkeypatch, "runs", "repair")
        assert run_id in repaired and "ended FAILED" in repaired
        assert dict(runs_in(root))[run_id] == "FAILED"
        assert "STALE" not in cli(root, monkeypatch, "runs", "list")
        checkpoints = sorted((root / "checkpoints" / "crash" / run_id).glob("epoch-*"))
        if not checkpoints:
            phases.append(f"{name}: before the first checkpoint")
            assert "no checkpoint to continue from" in repaired
            assert backprop(root, "run", "exp.toml", "-q").returncode == 0
            assert_same(final_weights(root, runs_in(root)[-1][0]), expected)
            continue
        assert len(checkpoints) <= 3  # the newest two, and the next one when killed before the older went
        assert f"backprop run --resume {run_id}" in repaired
        resumed = backprop(root, "run", "--resume", run_id, "-q")
        if "this run already ended" in resumed.stderr:  # killed while logging the end: its last checkpoint is final
            phases.append(f"{name}: final logging")
            assert_same(load_arrays(checkpoints[-1] / "model" / "weights.npz"), expected)
            continue
        phases.append(f"{name}: resumed from {checkpoints[-1].name}")
        assert resumed.returncode == 0, resumed.stderr
        assert dict(runs_in(root))[run_id] == "FINISHED"  # the same MLflow run, continued
        assert_same(final_weights(root, run_id), expected)
        for key in ("train_loss", "val_loss", "lr"):  # every epoch is in the store: none lost to the kill
            # (a set: the killed run's writer process may still deliver its last batch after the resume looked)
            assert set(steps_of(root, run_id, key)) == set(range(EPOCHS)), (name, key)
    print("kill moments:", *phases, sep="\n  ")
    assert sum("resumed from" in p for p in phases) >= 6, phases


def test_a_damaged_checkpoint_is_reported_and_the_previous_one_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from framework import fit
    from framework.checkpoint import find_checkpoint
    from framework.config import Experiment
    from tests.helpers import digits_config

    monkeypatch.chdir(tmp_path)
    config = digits_config(name="damaged", training={"epochs": 4, "batch_size": 32, "checkpoint_every": 1})
    uninterrupted = fit(Experiment.from_dict(config))
    (run_dir,) = (tmp_path / "checkpoints" / "damaged").iterdir()
    assert sorted(p.name for p in run_dir.glob("epoch-*")) == ["epoch-0003", "epoch-0004"]
    weights = run_dir / "epoch-0004" / "model" / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        found = find_checkpoint(run_dir.name)
    assert found == Path("checkpoints") / "damaged" / run_dir.name / "epoch-0003"
    assert (
        "epoch-0004 is damaged (model/weights.npz does not match its checksum); using the previous one" in caplog.text
    )
    # A damaged checkpoint given by its path falls back too.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert find_checkpoint(str(run_dir / "epoch-0004")).name == "epoch-0003"
    assert "damaged" in caplog.text
    resumed = fit(Experiment.from_dict(config), resume=found)
    for a, b in zip(uninterrupted.model.get_weights(), resumed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
