"""`backprop runs sync` (issue 19): a real `mlflow server` killed mid-run and started again on the same port and
store; the spooled run is sent twice (and once more after a partial send) and then holds exactly the points of
a run that stayed online, counted per metric and step."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.test_faults import SLOW, SLOW_EPOCHS, finish, start, wait_until
from tests.tracking.conftest import Server, free_port

BACKPROP = [sys.executable, "-m", "framework.cli"]
EPOCHS = 8


def serve(directory: Path, port: int) -> Server:
    """`mlflow server` on `port` with its store in `directory` (started again: the same store)."""
    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{directory / 'server.db'}",
        "--artifacts-destination", str(directory / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with open(directory / "server.log", "ab") as log:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((directory / "server.log").read_text()[-2000:])
        try:
            urllib.request.urlopen(server.url + "/health", timeout=2).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("mlflow server did not answer /health in time")


def counts(client: Any, run_id: str) -> Counter[tuple[str, int]]:
    """How many points the run holds, per metric and step."""
    run = client.get_run(run_id)
    return Counter((key, m.step) for key in run.data.metrics for m in client.get_metric_history(run_id, key))


def sync(root: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    return subprocess.run(
        [*BACKPROP, "runs", "sync"], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.slow
def test_a_run_spooled_while_the_server_was_down_is_synced_exactly_once(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    port = free_port()
    store = tmp_path / "server"
    server = serve(store, port)
    root = tmp_path / "work"
    root.mkdir()
    (root / "exp.toml").write_text(SLOW.replace("epochs = 100000", f"epochs = {EPOCHS}").replace("batch_size = 2", ""))
    (root / "slow_epochs.py").write_text(SLOW_EPOCHS)
    env = {"MLFLOW_TRACKING_URI": server.url}
    try:
        # The oracle: the same run, online all the way.
        code, _, err = finish(start(root, "exp.toml", "-q", "--plugin", "slow_epochs.py", env=env))
        assert code == 0, err
        (online,) = server.rest("runs/search", {"experiment_ids": ["1"]})["runs"]
        online_id = online["info"]["run_id"]

        process = start(root, "exp.toml", "-q", "--plugin", "slow_epochs.py", env=env)

        def two_epochs() -> str | None:
            try:
                found = server.rest("runs/search", {"experiment_ids": ["1"]})["runs"]
                mine = [r["info"]["run_id"] for r in found if r["info"]["run_id"] != online_id]
                if not mine:
                    return None
                history = server.rest(f"metrics/get-history?run_id={mine[0]}&metric_key=val_loss")
            except OSError:
                return None
            return str(mine[0]) if len(history.get("metrics", [])) >= 2 else None

        run_id = wait_until(two_epochs, process, "two epochs on the server")
        os.killpg(server.process.pid, signal.SIGKILL)  # the server dies mid-run
        server.process.wait()
        code, _, err = finish(process)
        assert code == 0, err
        spooled = root / "backprop-unsent" / run_id
        assert (spooled / "status.json").exists(), err
        backup = tmp_path / "backup"
        shutil.copytree(spooled, backup)

        server = serve(store, port)  # started again: the same store, the same address
        client = MlflowClient(tracking_uri=server.url)
        assert client.get_run(run_id).info.status == "RUNNING"
        first = sync(root, server.url)
        assert first.returncode == 0, first.stderr
        assert f"{run_id}: sent" in first.stdout and not spooled.exists()
        second = sync(root, server.url)
        assert second.returncode == 0 and "nothing to send" in second.stdout
        shutil.copytree(backup, spooled)  # as if the first sync had died after sending
        third = sync(root, server.url)
        assert third.returncode == 0, third.stderr
        assert f"{run_id}: sent 0 metric point(s)" in third.stdout and not spooled.exists()

        synced = counts(client, run_id)
        assert synced == counts(client, online_id)
        assert set(synced.values()) == {1}  # one point per metric and step
        assert {step for key, step in synced if key == "val_loss"} == set(range(EPOCHS))
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert {a.path for a in client.list_artifacts(run_id)} >= {"history.csv", "backprop_model"}
    finally:
        server.stop()


def test_runs_list_mentions_unsent_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from framework import fit
    from framework.cli import app
    from framework.config import Experiment
    from tests.helpers import xor_config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    fit(Experiment.from_dict(xor_config(tracking={"enabled": True})))
    (tmp_path / "backprop-unsent" / "abc").mkdir(parents=True)
    (tmp_path / "backprop-unsent" / "abc" / "status.json").write_text('{"status": "FINISHED", "error": null}')
    result = CliRunner().invoke(app, ["runs", "list"])
    assert result.exit_code == 0, result.output
    assert "unsent data of 1 run(s) in ./backprop-unsent/: send it with `backprop runs sync`" in result.output
