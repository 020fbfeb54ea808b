"""`backprop sweep` end to end: parent and child runs in a real MLflow store, resume, and Dask."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import digits_config

pytestmark = pytest.mark.slow

BACKPROP = [sys.executable, "-m", "framework.cli"]


def small_experiment(tmp_path: Path, epochs: int = 3, **overrides: Any) -> Path:
    config = digits_config(training={"epochs": epochs, "batch_size": 64}, **overrides)
    config["model"]["layers"][0]["units"] = 16
    config["tracking"] = {"enabled": True, "experiment": "sweep-test"}
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(config))
    return path


def sweep(path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BACKPROP, "sweep", str(path), "--quiet", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def children_of(store: str, parent: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("sweep-test")
    return list(client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"))


def parent_id(stdout: str) -> str:
    return next(line.split(": ")[1].strip() for line in stdout.splitlines() if line.startswith("parent run id:"))


def test_a_2x2_grid_with_2_workers_gives_a_parent_and_4_children_and_the_best_trial(store: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    path = small_experiment(tmp_path)
    done = sweep(
        path, "--grid", "optimizer.lr=0.01,0.1", "--grid", "optimizer.momentum=0.0,0.9", "--workers", "2", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parent = parent_id(done.stdout)
    children = children_of(store, parent)
    assert len(children) == 4
    assert {c.info.status for c in children} == {"FINISHED"}
    combos = {(c.data.params["optimizer.lr"], c.data.params["optimizer.momentum"]) for c in children}
    assert combos == {("0.01", "0.0"), ("0.01", "0.9"), ("0.1", "0.0"), ("0.1", "0.9")}
    # The best trial is the child with the lowest final val_loss (the direction of a loss).
    best = min(children, key=lambda c: c.data.metrics["val_loss"])
    run = MlflowClient(tracking_uri=store).get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.tags["backprop.best_run_id"] == best.info.run_id
    assert run.data.metrics["best_val_loss"] == pytest.approx(best.data.metrics["val_loss"])
    artifacts = {a.path for a in MlflowClient(tracking_uri=store).list_artifacts(parent)}
    assert "sweep.json" in artifacts
    assert [a.path for a in MlflowClient(tracking_uri=store).list_artifacts(parent, "diagnostics")] == [
        "diagnostics/parallel_coordinates.png"
    ]
    # Each child's config.json re-runs it as an ordinary run: no sweep section, the trial's values.
    config_path = MlflowClient(tracking_uri=store).download_artifacts(best.info.run_id, "config.json", str(tmp_path))
    config = json.loads(Path(config_path).read_text())
    assert config.get("sweep") is None
    assert str(config["optimizer"]["lr"]) == best.data.params["optimizer.lr"]


def test_a_sweep_stopped_halfway_finishes_only_the_missing_trials(store: str, tmp_path: Path) -> None:
    path = small_experiment(tmp_path, epochs=25)
    args = ["--grid", "optimizer.lr=0.01,0.02,0.03,0.04", "--workers", "1"]
    process = subprocess.Popen(
        [*BACKPROP, "sweep", str(path), "--quiet", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    from framework.mlflow_store import open_client

    client = open_client(store)  # under the store lock: the sweep may be creating the tables right now
    deadline = time.monotonic() + 300
    finished: list[Any] = []
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        experiment = client.get_experiment_by_name("sweep-test")
        if experiment is None:
            continue
        finished = list(
            client.search_runs(
                [experiment.experiment_id], "attributes.status = 'FINISHED' and tags.`backprop.trial` != ''"
            )
        )
        if len(finished) >= 2:
            break
        if process.poll() is not None:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert len(finished) >= 2, f"the first trials did not finish in time: {out} {err}"
    assert process.returncode != 0
    runs = client.search_runs(
        [client.get_experiment_by_name("sweep-test").experiment_id], "attributes.status = 'FINISHED'"
    )
    first_ids = {r.info.run_id for r in runs if "backprop.trial" in r.data.tags}  # a third may have finished too

    done = sweep(path, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    parent = parent_id(done.stdout)
    children = children_of(store, parent)
    finished_children = [c for c in children if c.info.status == "FINISHED"]
    assert len({c.data.tags["backprop.trial_hash"] for c in finished_children}) == 4
    assert first_ids <= {c.info.run_id for c in finished_children}  # the finished trials were not re-run
    assert len(finished_children) == 4
    assert "RUNNING" not in {c.info.status for c in children}
    assert f"{len(first_ids)} from an earlier run" in done.stdout


def test_the_same_sweep_runs_on_a_dask_cluster(store: str, tmp_path: Path) -> None:
    from distributed import LocalCluster

    path = small_experiment(tmp_path, epochs=2)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        done = sweep(
            path,
            "--grid",
            "optimizer.lr=0.01,0.1",
            "--executor",
            "dask",
            "--address",
            cluster.scheduler_address,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    children = children_of(store, parent_id(done.stdout))
    assert sorted(c.data.params["optimizer.lr"] for c in children) == ["0.01", "0.1"]
    assert {c.info.status for c in children} == {"FINISHED"}


def test_a_sweep_killed_with_sigkill_leaves_stale_children_that_its_rerun_ends_failed_and_runs_again(
    store: str, tmp_path: Path
) -> None:
    """Issue 19: a sweep never treats a stale child as running; re-running the sweep repairs and re-runs it."""
    import os

    from framework.mlflow_store import open_client

    path = small_experiment(tmp_path, epochs=40)
    args = ["--grid", "optimizer.lr=0.01,0.02", "--workers", "1"]
    process = subprocess.Popen(
        [*BACKPROP, "sweep", str(path), "--quiet", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the sweep and its pool die together, as under the OOM killer
    )
    client = open_client(store)
    deadline = time.monotonic() + 300
    running: list[Any] = []
    while time.monotonic() < deadline and process.poll() is None and not running:
        time.sleep(0.3)
        experiment = client.get_experiment_by_name("sweep-test")
        if experiment is not None:
            running = [
                r
                for r in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
                if "backprop.trial" in r.data.tags and "train_loss" in r.data.metrics  # well into its training
            ]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert running, "no trial was training before the deadline"
    stale_id = running[0].info.run_id
    time.sleep(0.5)  # the pool's worker is gone too (same process group)
    assert client.get_run(stale_id).info.status == "RUNNING"  # what kill -9 leaves behind

    done = sweep(path, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    stale = client.get_run(stale_id)
    assert stale.info.status == "FAILED"
    assert stale.data.tags["backprop.end_reason"] == "process died"
    children = children_of(store, parent_id(done.stdout))
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(finished) == 2 and {c.data.tags["backprop.trial_hash"] for c in finished} == {
        c.data.tags["backprop.trial_hash"] for c in children
    }
    assert stale.data.tags["backprop.trial_hash"] in {c.data.tags["backprop.trial_hash"] for c in finished}
    assert "RUNNING" not in {c.info.status for c in children}
