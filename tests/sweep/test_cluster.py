"""Sweeps on a real cluster: `dask scheduler`, two `dask worker` processes and an `mlflow server` (conftest.py).

Each fault is its own test: a worker killed mid-trial, the client interrupted, the tracking server away.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sweep.conftest import Cluster, children, experiment_file, parent_id, run_sweep, sweep_command
from tests.tracking.conftest import Server, free_port

pytestmark = pytest.mark.slow

EIGHT = "optimizer.lr=0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08"


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def by_status(runs: list[Any]) -> collections.Counter[str]:
    return collections.Counter(r.info.status for r in runs)


def one_finished_per_trial(runs: list[Any], trials: int) -> None:
    finished = collections.Counter(r.data.tags["backprop.trial_hash"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == trials and set(finished.values()) == {1}, finished
    assert "RUNNING" not in by_status(runs)


def test_an_8_trial_sweep_runs_on_both_workers_and_logs_everything_to_the_server(
    cluster: Cluster, tracking_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)  # where `runs:/` model URIs are resolved

    path = experiment_file(tmp_path, epochs=3, name="cluster-eight")
    done = run_sweep(path, "--grid", EIGHT, "--executor", "dask", "--address", cluster.address, uri=tracking_server.url,
                     cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    runs = children(tracking_server.url, "cluster-eight", parent_id(done.stdout))
    assert len(runs) == 8
    one_finished_per_trial(runs, 8)
    client = mlflow.MlflowClient(tracking_uri=tracking_server.url)
    for run in runs:  # each trial's artifacts and model, on the server's artifact store
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "history.csv", "training_curves.png"} <= artifacts
        local = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path / "m"))
        assert "python_function" in (Path(local) / "MLmodel").read_text()
    # Both worker processes trained trials (each child run names the process that trained it).
    assert {r.data.tags["backprop.pid"] for r in runs} == {str(w.pid) for w in cluster.workers.values()}


def test_a_worker_killed_mid_trial_has_its_trial_retried_on_the_other(
    cluster: Cluster, tracking_server: Server, tmp_path: Path
) -> None:
    path = experiment_file(tmp_path, epochs=150, name="cluster-kill", units=64)
    command = sweep_command(
        path, "--grid", "optimizer.lr=0.01,0.02", "--executor", "dask", "--address", cluster.address
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server.url}
    sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = cluster.worker_running_a_task()
        time.sleep(2.0)  # well into the trial: its child run is RUNNING on the server
        cluster.workers[victim].send_signal(signal.SIGKILL)
        cluster.workers[victim].wait()
        out, err = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        cluster.ensure_workers()
    assert sweep.returncode == 0, out + err
    runs = children(tracking_server.url, "cluster-kill", parent_id(out))
    one_finished_per_trial(runs, 2)
    killed = [r for r in runs if r.info.status == "KILLED"]  # the attempt that died with its worker
    assert len(killed) == 1
    retried = killed[0].data.tags
    assert retried["backprop.stop_reason"] == "its worker was lost; the trial ran again"
    finished = {r.info.run_id: r for r in runs if r.info.status == "FINISHED"}
    assert finished[retried["backprop.retried_as"]].data.tags["backprop.trial_hash"] == retried["backprop.trial_hash"]


def test_an_interrupted_sweep_ends_killed_and_its_rerun_finishes_only_what_is_missing(
    cluster: Cluster, tracking_server: Server, tmp_path: Path
) -> None:
    path = experiment_file(tmp_path, epochs=1500, name="cluster-interrupt", units=64)  # about 4 s a trial
    args = ("--grid", EIGHT, "--executor", "dask", "--address", cluster.address)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_server.url}
    sweep = subprocess.Popen(
        sweep_command(path, *args), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_server.url)

        def finished_and_running() -> bool:
            found = client.get_experiment_by_name("cluster-interrupt")
            if found is None:
                return False
            statuses = by_status(client.search_runs([found.experiment_id], "tags.mlflow.parentRunId != ''"))
            return statuses["FINISHED"] >= 1 and statuses["RUNNING"] >= 1

        wait_until(finished_and_running, 300, "a finished trial and a running one")
        sweep.send_signal(signal.SIGINT)
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    assert sweep.returncode == 130, out + err
    parent = parent_id(out)
    assert client.get_run(parent).info.status == "KILLED"
    before = children(tracking_server.url, "cluster-interrupt", parent)
    statuses = by_status(before)
    assert "RUNNING" not in statuses and statuses["KILLED"] >= 1 and 1 <= statuses["FINISHED"] < 8, statuses
    # Running the same command again finishes the trials that are missing, under the same parent, and no other.
    again = run_sweep(path, *args, uri=tracking_server.url, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert parent_id(again.stdout) == parent
    after = children(tracking_server.url, "cluster-interrupt", parent)
    one_finished_per_trial(after, 8)
    assert len(after) - len(before) == 8 - statuses["FINISHED"]
    assert f"({statuses['FINISHED']} from an earlier run of this sweep)" in again.stdout
    assert client.get_run(parent).info.status == "FINISHED"


def test_an_unreachable_tracking_server_is_refused_before_any_trial(cluster: Cluster, tmp_path: Path) -> None:
    away = f"http://127.0.0.1:{free_port()}"
    path = experiment_file(tmp_path, epochs=3, name="cluster-away")
    started = time.monotonic()
    done = run_sweep(path, "--grid", EIGHT, "--executor", "dask", "--address", cluster.address, uri=away, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert away in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
    assert time.monotonic() - started < 60
    assert "trial" not in done.stdout  # refused before the first trial


IMPORTED = "'framework.build' in __import__('sys').modules"  # evaluated in a worker (eval pickles by name)


def test_a_new_worker_imports_what_a_trial_needs_before_the_first_trial(cluster: Cluster, tmp_path: Path) -> None:
    from framework.sweep_exec import DaskExecutor
    from tests.sweep.conftest import stop_process

    before = set(cluster.workers)
    cluster.ensure_workers(len(before) + 1)  # a fresh process: it has imported nothing of backprop yet
    (name,) = set(cluster.workers) - before
    try:
        with cluster.client() as client:
            address = next(a for a, w in client.scheduler_info(n_workers=-1)["workers"].items() if w["name"] == name)
            assert client.run(eval, IMPORTED, workers=[address]) == {address: False}
            executor = DaskExecutor(cluster.address, f"sqlite:///{tmp_path}/mlflow.db")
            try:
                for future in executor.warming:
                    future.result(timeout=120)
                assert client.run(eval, IMPORTED, workers=[address]) == {address: True}
            finally:
                executor.close()
    finally:
        stop_process(cluster.workers.pop(name))
        cluster.wait_for(len(before))
