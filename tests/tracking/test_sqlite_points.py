"""Points written straight into a SQLite store (plugins/tracking/sqlite_points.py) read back as MLflow's own
`log_batch` stores them: the same batches go to one run each way, and MLflow's reads must agree."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from framework.mlflow_store import open_client
from plugins.tracking.sender import send_points
from plugins.tracking.sqlite_points import open_points

T0 = 1_800_000_000_000
INF = float("inf")
NAN = float("nan")

BATCHES: list[list[tuple[str, float, int, int]]] = [
    [("batch_loss", 2.5, T0, 0), ("batch_loss", 2.25, T0 + 1, 1), ("train/acc rate", 0.1, T0, 0)],
    [  # a second batch: duplicates of stored points, NaN, infinities, a step logged twice
        ("batch_loss", 2.25, T0 + 1, 1),
        ("batch_loss", NAN, T0 + 2, 2),
        ("batch_loss", NAN, T0 + 2, 2),
        ("batch_loss", INF, T0 + 3, 3),
        ("batch_loss", -INF, T0 + 4, 4),
        ("batch_loss", 1.0, T0 + 5, 5),
        ("batch_loss", 0.5, T0 + 5, 5),
        ("train/acc rate", 0.3, T0 + 9, 2),
        ("lr", 0.01, T0, 0),
    ],
    [  # older points after newer ones: the latest value stays the newest step's
        ("batch_loss", 9.0, T0 + 100, 4),
        ("train/acc rate", 0.7, T0 + 1, 2),
        ("train/acc rate", 0.2, T0 + 20, 1),
        ("lr", 0.02, T0 - 5, 0),
    ],
]


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def history(client: Any, run_id: str, key: str) -> list[tuple[int, int, float]]:
    points = [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key)]
    return sorted(points, key=lambda p: (p[0], p[1], 0.0 if math.isnan(p[2]) else p[2]))


def latest_rows(db: Path, run_id: str) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,)
        ).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


@pytest.fixture
def client(store: str) -> Any:
    return open_client(store)


def two_runs(client: Any) -> tuple[str, str]:
    experiment_id = client.create_experiment("points")
    return client.create_run(experiment_id).info.run_id, client.create_run(experiment_id).info.run_id


def test_points_read_back_as_log_batch_stores_them(client: Any, tmp_path: Path) -> None:
    fast_run, oracle_run = two_runs(client)
    fast = open_points(client, fast_run)
    assert fast is not None, "the installed MLflow's SQLite store should take points directly"
    for batch in BATCHES:
        fast.write(batch)
        send_points(client, oracle_run, batch)
    keys = {key for batch in BATCHES for key, *_ in batch}
    for key in keys:
        got, want = history(client, fast_run, key), history(client, oracle_run, key)
        assert [p[:2] for p in got] == [p[:2] for p in want], key
        assert all(same(g[2], w[2]) for g, w in zip(got, want, strict=True)), (key, got, want)
    fast_metrics, oracle_metrics = client.get_run(fast_run).data.metrics, client.get_run(oracle_run).data.metrics
    assert fast_metrics.keys() == oracle_metrics.keys() == keys
    assert all(same(fast_metrics[k], oracle_metrics[k]) for k in keys), (fast_metrics, oracle_metrics)
    assert latest_rows(tmp_path / "mlflow.db", fast_run) == latest_rows(tmp_path / "mlflow.db", oracle_run)
    assert latest_rows(tmp_path / "mlflow.db", fast_run)["batch_loss"][2:] == (5, 0)  # step 5, not NaN


def test_a_bad_metric_name_is_refused_and_nothing_of_its_batch_stored(client: Any) -> None:
    run_id, _ = two_runs(client)
    fast = open_points(client, run_id)
    assert fast is not None
    with pytest.raises(MlflowException, match="bad"):
        fast.write([("loss", 1.0, T0, 0), ("../bad", 1.0, T0, 0)])
    assert client.get_metric_history(run_id, "loss") == []


def test_a_store_laid_out_otherwise_gets_log_batch(client: Any, tmp_path: Path) -> None:
    run_id, _ = two_runs(client)
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        connection.execute("ALTER TABLE metrics ADD COLUMN dataset TEXT")
    assert open_points(client, run_id) is None
    assert open_points(object(), run_id) is None  # not an MLflow client at all
