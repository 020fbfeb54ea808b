"""Owners and heartbeats of tracked runs (framework/ownership.py, issue 19)."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framework import fit, hookimpl, ownership
from framework.config import Experiment
from tests.helpers import xor_config


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_same_host_owner_is_alive_dead_or_another_process() -> None:
    me = ownership.owner_tags()
    assert me[ownership.PID] == str(os.getpid()) and me[ownership.HOST] == socket.gethostname()
    assert ownership.stale_reason(me) is None
    reused = {**me, ownership.STARTED: "another-boot:1"}  # the PID now belongs to another process
    assert ownership.stale_reason(reused) == f"process {os.getpid()} on {me[ownership.HOST]} is another process now"
    pid = dead_pid()
    assert ownership.stale_reason({**me, ownership.PID: str(pid)}) == f"process {pid} on {me[ownership.HOST]} is dead"
    assert ownership.stale_reason({}) is None  # a run without an owner (another tool's) is never stale


def test_another_hosts_owner_is_stale_when_its_heartbeat_is_old() -> None:
    now = 10_000_000
    tags = {ownership.HOST: "elsewhere.invalid", ownership.PID: "1", ownership.STARTED: "x"}
    fresh = now - int(ownership.STALE_AFTER_S * 1000) + 1
    old = now - int(ownership.STALE_AFTER_S * 1000) - 1000
    assert ownership.stale_reason({**tags, ownership.HEARTBEAT: str(fresh)}, now) is None
    assert ownership.stale_reason({**tags, ownership.HEARTBEAT: str(old)}, now) == (
        f"no heartbeat from elsewhere.invalid for {ownership.STALE_AFTER_S + 1:.0f} s"
    )


class Slow:
    @hookimpl
    def after_epoch(self, epoch: int) -> None:
        time.sleep(0.1)


def tags_of(database: Path, run_id: str) -> dict[str, str]:
    connection = sqlite3.connect(database)
    try:
        return dict(connection.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
    finally:
        connection.close()


def test_a_tracked_run_records_its_owner_beats_and_warns_of_stale_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    monkeypatch.setattr(ownership, "HEARTBEAT_EVERY_S", 0.05)
    config = xor_config(tracking={"enabled": True})
    first = fit(Experiment.from_dict(config))  # creates the store (through MLflow), then the direct path
    assert first.run_id is not None
    tags = tags_of(database, first.run_id)
    assert tags[ownership.PID] == str(os.getpid()) and tags[ownership.CWD] == str(tmp_path)
    assert tags[ownership.STARTED] == ownership.process_started(os.getpid())

    started = time.time() * 1000
    config["training"]["epochs"] = 5
    second = fit(Experiment.from_dict(config), [Slow()])  # 0.5 s: about ten beats
    assert second.run_id is not None
    beat = int(tags_of(database, second.run_id)[ownership.HEARTBEAT])
    assert beat > started + 100  # renewed while training, not only set at the start
    # The beat writes MLflow's tags table directly (a private seam): MLflow's own client must read it back.
    from mlflow import MlflowClient

    assert MlflowClient(f"sqlite:///{database}").get_run(second.run_id).data.tags[ownership.HEARTBEAT] == str(beat)

    # The first run's owner is now a dead process: the next run says so, in one line.
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("UPDATE runs SET status = 'RUNNING' WHERE run_uuid = ?", (first.run_id,))
        connection.execute(
            "UPDATE tags SET value = ? WHERE key = ? AND run_uuid = ?", (str(dead_pid()), ownership.PID, first.run_id)
        )
    connection.close()
    with caplog.at_level(logging.WARNING, logger="framework.ownership"):
        fit(Experiment.from_dict(xor_config(tracking={"enabled": True})))
    warnings = [r.getMessage() for r in caplog.records if r.name == "framework.ownership"]
    assert warnings == [
        f"1 run(s) in sqlite:///{database} are RUNNING but their process died ({first.run_id}); "
        "end them with `backprop runs repair`"
    ]


def test_the_stale_check_reads_a_store_of_300_running_runs_in_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check every tracked run makes at its start, on a store with 300 RUNNING runs (its cost is part of the
    tracked wall time that benchmarks/bench_cli.py measures)."""
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    fit(Experiment.from_dict(xor_config(tracking={"enabled": True})))
    connection = sqlite3.connect(database)
    with connection:
        (row,) = connection.execute("SELECT experiment_id, artifact_uri FROM runs").fetchall()
        for i in range(300):
            run_id = f"{i:032x}"
            connection.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                "VALUES (?, 'r', 'UNKNOWN', '', '', 'u', 'RUNNING', 0, '', 'active', ?, ?)",
                (run_id, row[1], row[0]),
            )
            owner = {**ownership.owner_tags(), ownership.PID: str(os.getpid())}
            connection.executemany(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", [(k, v, run_id) for k, v in owner.items()]
            )
    connection.close()

    class Local:  # what warn_if_stale reads of a LocalTrackingStore
        tracking_uri = f"sqlite:///{database}"

        class store:
            pass

    Local.store.database = database  # type: ignore[attr-defined]
    assert ownership.warn_if_stale(Local()) == 0  # all owned by this live process
    assert len(ownership.running_runs_local(database)) == 300
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "UPDATE tags SET value = ? WHERE key = ? AND run_uuid = ?", (str(dead_pid()), ownership.PID, f"{7:032x}")
        )
    connection.close()
    assert ownership.warn_if_stale(Local()) == 1
    statements: list[str] = []
    real_connect = sqlite3.connect

    def counting(*args: object, **kwargs: object) -> sqlite3.Connection:
        connection = real_connect(*args, **kwargs)  # type: ignore[arg-type]
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(ownership.sqlite3, "connect", counting)
    ownership.warn_if_stale(Local())
    assert [q for q in statements if q.lstrip().upper().startswith("SELECT")] and len(statements) == 1
