"""Faults (issue 7), each with a real `backprop run` process and a real signal, plugin, file or server.

Runs are tracked into a SQLite store in the test's directory (or a real `mlflow server` of their own, for the
server that dies) and checked through MlflowClient. Signals go through the CLI, which reinstalls the default
SIGINT handler: these tests also pass when pytest itself was started with SIGINT ignored (`trap '' INT`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework.serialize import load_arrays
from framework.trainer import SNAPSHOT_INTERVAL_S

BACKPROP = [sys.executable, "-m", "framework.cli"]

SLOW = """\
name = "faults"
seed = 1

[data]
name = "digits"
validation_split = 0.2

[model]
layers = [{ units = 16, activation = "relu" }, { units = 10 }]

[loss]
name = "cross_entropy"

[optimizer]
name = "sgd"
lr = 0.01

[training]
epochs = 100000
batch_size = 2
"""


def store_of(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def start(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": store_of(root), **(env or {})}
    return subprocess.Popen(
        [*BACKPROP, "run", *args], cwd=root, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def wait_until(condition: Callable[[], Any], process: subprocess.Popen[str], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.communicate()}")
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"timed out waiting for {what}")


def runs(uri: str) -> list[Any]:
    from framework.mlflow_store import open_client

    client = open_client(uri)  # under the store's lock: never race the training process in creating the schema
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def epochs_logged(uri: str, at_least: int) -> str | None:
    """The id of the (only) run once it has logged `at_least` epochs of val_loss."""
    from mlflow import MlflowClient

    if not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    try:
        found = runs(uri)
        if len(found) != 1:
            return None
        history = MlflowClient(tracking_uri=uri).get_metric_history(found[0].info.run_id, "val_loss")
    except Exception:  # the store is being created by the other process
        return None
    return str(found[0].info.run_id) if len(history) >= at_least else None


def run_of(uri: str, run_id: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri).get_run(run_id)


# -- NaN loss in the middle of a run ---------------------------------------------------------------------

POISON = """\
import numpy as np
from framework import hookimpl

@hookimpl
def before_epoch(trainer, epoch):
    if epoch == 3:  # the weights go NaN: epoch 4's loss is NaN
        trainer.model.parameters()[0][...] = np.nan
"""


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_weights(tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_text(SLOW.replace("epochs = 100000", "epochs = 10\ncheckpoint_every = 1"))
    (tmp_path / "poison.py").write_text(POISON)
    code, out, err = finish(start(tmp_path, "exp.toml", "-q", "--plugin", "poison.py"))
    assert code == 0, err
    assert "stopped: train_loss is nan at epoch 4; kept the weights of epoch 3" in out
    (run,) = runs(store_of(tmp_path))
    assert run.info.status == "FINISHED"
    assert run.data.tags["backprop.stop_reason"].startswith("train_loss is nan at epoch 4")
    (run_dir,) = (tmp_path / "checkpoints" / "faults").iterdir()
    final = load_arrays(run_dir / "model" / "weights.npz")
    good = load_arrays(run_dir / "epoch-0003" / "model" / "weights.npz")
    assert all(np.isfinite(a).all() for a in final.values())
    for key in good:
        np.testing.assert_array_equal(final[key], good[key])


# -- SIGINT and SIGTERM in the middle of an epoch ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_writes_a_checkpoint_records_killed_and_the_run_resumes(tmp_path: Path, signum: int) -> None:
    (tmp_path / "exp.toml").write_text(SLOW)
    uri = store_of(tmp_path)
    process = start(tmp_path, "exp.toml", "-q")
    run_id = wait_until(lambda: epochs_logged(uri, 2), process, "two epochs")
    # The Ctrl-C checkpoint is a snapshot at most SNAPSHOT_INTERVAL_S old: wait for one taken after epoch 1.
    # Nearly all the time is spent inside epochs: the signal lands in the middle of one.
    time.sleep(SNAPSHOT_INTERVAL_S + 0.2)
    process.send_signal(signum)
    code, _, err = finish(process)
    assert code == 130, err
    assert "Traceback" not in err
    assert ("terminated" if signum == signal.SIGTERM else "interrupted") in err and "recorded as KILLED" in err
    (line,) = [line for line in err.splitlines() if line.startswith("checkpoint: ")]
    checkpoint = Path(line.split()[1])
    assert (tmp_path / checkpoint / "state.json").exists()
    assert run_of(uri, run_id).info.status == "KILLED"
    done_epochs = json.loads((tmp_path / checkpoint / "state.json").read_text())["epoch"] + 1
    assert done_epochs >= 2

    code, out, err = finish(
        start(tmp_path, "--resume", str(checkpoint), "-q", "--set", f"training.epochs={done_epochs + 1}")
    )
    assert code == 0, err
    assert f"run id: {run_id}" in out  # the same MLflow run, continued
    resumed = run_of(uri, run_id)
    assert resumed.info.status == "FINISHED"
    from mlflow import MlflowClient

    steps = [m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, "val_loss")]
    # Resumed at the checkpoint (a snapshot at most a second old), then one more epoch: its metrics are logged.
    assert done_epochs in steps


# -- a plugin that raises in a per-batch hook ------------------------------------------------------------

EXPLODING = """\
from framework import hookimpl

@hookimpl
def after_batch(epoch, batch):
    if epoch == 1 and batch == 3:
        raise RuntimeError("the exploding plugin exploded")
"""


def test_a_plugin_raising_in_a_batch_hook_is_named_and_the_run_failed(tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_text(SLOW.replace("epochs = 100000", "epochs = 3").replace("batch_size = 2", ""))
    (tmp_path / "exploding.py").write_text(EXPLODING)
    code, _, err = finish(start(tmp_path, "exp.toml", "-q", "--plugin", "exploding.py"))
    assert code == 1, err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "RuntimeError: the exploding plugin exploded" in line
    assert "hook after_batch of plugin 'exploding'" in line
    (run,) = runs(store_of(tmp_path))
    assert run.info.status == "FAILED"
    assert "the exploding plugin exploded" in run.data.tags["backprop.error"]


# -- the tracking server: down at the start, killed in the middle ----------------------------------------


def test_a_server_down_at_the_start_is_one_line_exit_2_in_seconds(tmp_path: Path) -> None:
    from tests.tracking.conftest import free_port

    (tmp_path / "exp.toml").write_text(SLOW)
    started = time.monotonic()
    code, _, err = finish(
        start(tmp_path, "exp.toml", "-q", env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"})
    )
    assert time.monotonic() - started < 30
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "is not reachable" in line and "--no-track" in line
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "backprop-unsent").exists()


SLOW_EPOCHS = """\
import time
from pathlib import Path
from framework import hookimpl

@hookimpl
def after_epoch(epoch):
    time.sleep(0.3)  # epochs long enough for the sender's first batch (2 s in) to reach the server
    if epoch == 9:  # then wait for the test to kill the server: epochs 10 and 11 are surely logged after it
        deadline = time.monotonic() + 60
        while not Path("server_killed").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
"""


@pytest.mark.slow
def test_a_server_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    from tests.tracking.conftest import start_server

    server = start_server(tmp_path / "server")
    root = tmp_path / "work"
    root.mkdir()
    (root / "exp.toml").write_text(SLOW.replace("epochs = 100000", "epochs = 12").replace("batch_size = 2", ""))
    (root / "slow_epochs.py").write_text(SLOW_EPOCHS)
    try:
        process = start(root, "exp.toml", "-q", "--plugin", "slow_epochs.py", env={"MLFLOW_TRACKING_URI": server.url})

        def two_epochs() -> str | None:
            try:
                found = server.rest("runs/search", {"experiment_ids": ["1"]}).get("runs", [])
                if not found:
                    return None
                run_id = found[0]["info"]["run_id"]
                history = server.rest(f"metrics/get-history?run_id={run_id}&metric_key=val_loss")
            except OSError:
                return None
            return str(run_id) if len(history.get("metrics", [])) >= 2 else None

        run_id = wait_until(two_epochs, process, "two epochs on the server")
        server.kill()
        (root / "server_killed").touch()
        code, out, err = finish(process)
    finally:
        server.stop()
    assert code == 0, err
    assert "stopped: completed 12 epochs" in out
    where = root / "backprop-unsent" / run_id
    assert str(where) in err  # the user is told where
    assert json.loads((where / "status.json").read_text())["status"] == "FINISHED"
    steps = {int(row.split(",")[3]) for row in (where / "metrics.csv").read_text().splitlines()[1:]}
    assert 11 in steps, (err, (where / "metrics.csv").read_text())
    assert (where / "model" / "weights.npz").exists() and len((where / "history.csv").read_text().splitlines()) == 13


# -- an artifact that cannot be written ------------------------------------------------------------------
# The tests run as root, for whom chmod does not stop writes; so a regular file is put where a directory is
# expected: mkdir then fails with NotADirectoryError/FileExistsError whoever runs it.


@pytest.mark.slow
def test_a_checkpoint_dir_that_breaks_mid_run_is_reported_and_the_model_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exp.toml").write_text(
        SLOW.replace("epochs = 100000", "epochs = 30\ncheckpoint_every = 1").replace("batch_size = 2", "batch_size = 8")
    )
    uri = store_of(tmp_path)
    process = start(tmp_path, "exp.toml", "-q")
    # Two epochs checkpointed (only the newest two are kept: epoch-0002 itself may be gone already).
    done = lambda: [p for p in tmp_path.glob("checkpoints/*/*/epoch-*") if int(p.name[6:]) >= 2]  # noqa: E731
    wait_until(done, process, "two checkpoints")
    (tmp_path / "checkpoints").rename(tmp_path / "checkpoints.moved")
    (tmp_path / "checkpoints").write_text("a file where the checkpoints were")
    code, out, err = finish(process)
    assert code == 0, err
    assert "could not write a checkpoint under checkpoints/faults/" in err
    assert "stopped: completed 30 epochs" in out
    (run,) = runs(uri)
    assert run.info.status == "FINISHED"
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")  # the trained model is in MLflow all the same
    assert model.predict(np.zeros((2, 64), dtype=np.float32)).shape == (2, 10)


@pytest.mark.slow
def test_an_artifact_store_that_breaks_mid_run_keeps_the_model_locally(tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_text(
        SLOW.replace("epochs = 100000", "epochs = 15").replace("batch_size = 2", "batch_size = 4")
    )
    uri = store_of(tmp_path)
    process = start(tmp_path, "exp.toml", "-q")
    run_id = wait_until(lambda: epochs_logged(uri, 2), process, "two epochs")
    (tmp_path / "mlruns").rename(tmp_path / "mlruns.moved")
    (tmp_path / "mlruns").write_text("a file where the artifacts were")
    code, _, err = finish(process)
    assert code == 0, err
    where = tmp_path / "backprop-unsent" / run_id
    assert f"saved in {where}" in err and "NotADirectoryError" in err
    from framework.serialize import load_model

    model = load_model(where / "model")
    assert model.predict(np.zeros((2, 64))).shape == (2, 10)
    assert run_of(uri, run_id).info.status == "FINISHED"  # the store itself still answers


def test_an_artifact_store_that_cannot_be_written_fails_before_training(tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_text(SLOW)
    (tmp_path / "mlruns").write_text("a file where the artifacts go")
    code, _, err = finish(start(tmp_path, "exp.toml", "-q"))
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: MLflow cannot store the artifacts of run") and "--no-track" in line
    (run,) = runs(store_of(tmp_path))
    assert run.info.status == "FAILED"


# -- two runs writing to one fresh SQLite store at once ---------------------------------------------------


@pytest.mark.slow
def test_concurrent_runs_on_a_fresh_sqlite_store_are_all_recorded(tmp_path: Path) -> None:
    (tmp_path / "exp.toml").write_text(SLOW.replace("epochs = 100000", "epochs = 3").replace("batch_size = 2", ""))
    processes = [start(tmp_path, "exp.toml", "-q", "--set", f"seed={i}") for i in range(3)]
    results = [finish(p) for p in processes]
    for code, _, err in results:
        assert code == 0, err
        assert "locked" not in err
    found = runs(store_of(tmp_path))
    assert len(found) == 3 and {r.info.status for r in found} == {"FINISHED"}
    assert {r.data.params["seed"] for r in found} == {"0", "1", "2"}
