"""The bad-input catalogue (issue 7): every mistake a user can make in a config, its data or its plugins.

One table, one test. Each case runs the real `backprop` command line (in-process) with tracking ON into a
temporary SQLite store, and must end in exactly one line on standard error that names what is wrong, where
(the file and key, or the column) and what is allowed; exit code 2; no traceback (and one with `--debug`);
no MLflow run at all (every mistake is found before training starts, so not even a store is created); and
the directory exactly as it was (nothing half-written). `docs/troubleshooting.md` must mention every
case's `what` (tests/reliability/test_troubleshooting_doc.py keeps them in step).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.cli import app
from tests.reliability.catalogue import BASE, CASES, CSV_BASE, NPZ_BASE, Case, c

__all__ = ["BASE", "CSV_BASE", "NPZ_BASE", "Case", "arguments", "c", "listing", "tracked", "write_files"]


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if any("objects.npz" in str(v) for v in files.values() if isinstance(v, str)):
        np.savez(root / "objects.npz", X=np.array([{"a": 1}, {"b": 2}], dtype=object), y=np.array([0, 1]))


def listing(root: Path) -> list[str]:
    """Every file and folder under `root`; Python's own bytecode cache of an imported plugin file aside (it is
    written wherever PYTHONDONTWRITEBYTECODE is unset, and is no file of backprop's)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


def arguments(case: Case) -> list[str]:
    args = ["run", *case.args]
    for key, value in case.sets.items():
        args += ["--set", f"{key}={value}"]
    return args


@pytest.fixture
def tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tracking on, into a SQLite store in the test's directory (which is also the current directory)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_catalogue_is_big_enough() -> None:
    assert len(CASES) >= 40
    for name, case in CASES.items():
        assert case.what and case.where and case.allowed, name


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_one_clear_line_exit_2_and_leaves_nothing(name: str, tracked: Path) -> None:
    case = CASES[name]
    write_files(tracked, case.files)
    before = listing(tracked)

    result = CliRunner().invoke(app, arguments(case))

    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    line = lines[0]
    for part, fragment in (("what", case.what), ("where", case.where), ("allowed", case.allowed)):
        assert fragment in line, f"{part}: {fragment!r} not in {line!r}"
    assert "Traceback" not in result.output
    # Found before training: no MLflow run, not even a store; and nothing written or half-written.
    assert not (tracked / "mlflow.db").exists()
    assert listing(tracked) == before

    debug = CliRunner().invoke(app, ["--debug", *arguments(case)])
    assert debug.exit_code == 2 and "Traceback" in debug.output, debug.output
    assert listing(tracked) == before


@pytest.mark.parametrize("name", ["toml syntax", "unknown optimizer", "csv ragged rows", "plugin fails to import"])
def test_a_bad_input_in_a_real_process(name: str, tmp_path: Path) -> None:
    """The same, through the installed entry point: what the user's shell sees."""
    case = CASES[name]
    write_files(tmp_path, case.files)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "framework.cli", *arguments(case)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert case.what in line and case.where in line and case.allowed in line
    assert not (tmp_path / "mlflow.db").exists()


def test_a_batch_larger_than_the_data_is_one_batch(tracked: Path) -> None:
    """Allowed: the batch is the whole training set. Tracked, the run ends FINISHED."""
    (tracked / "exp.toml").write_text(BASE)
    result = CliRunner().invoke(app, ["run", "exp.toml", "-q", "--set", "training.batch_size=100000"])
    assert result.exit_code == 0, result.output
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracked / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "catalogue"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["training.batch_size"] == "100000"
    # Two epochs of one batch each: the per-epoch metrics are there.
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 2


FAULT_MESSAGES = [  # what tests/reliability/test_faults.py and test_security.py check in their output
    "is not reachable",
    "the tracking server went away",
    "MLflow cannot store the artifacts",
    "logging the end of the run failed",
    "could not write a checkpoint",
    "recorded as KILLED",
    "continue with: backprop run --resume",
    "is nan at epoch",
    "(raised in hook after_batch of plugin",
    "database is locked",
    "warning: binding to 0.0.0.0 makes",
]


def test_troubleshooting_covers_every_message_of_the_catalogue() -> None:
    from tests.helpers import ROOT

    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    missing = sorted({case.what for case in CASES.values()} | set(FAULT_MESSAGES))
    missing = [what for what in missing if what not in page]
    assert not missing, f"docs/troubleshooting.md does not mention: {missing}"
