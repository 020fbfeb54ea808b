"""Metric points into a local SQLite store at 5-10 µs a point, where MLflow's `log_batch` spends ~65-100 µs.

MLflow's SQLAlchemy store turns every point of a `log_batch` into an ORM object, validates it, and flushes
it through SQLAlchemy's unit of work: about 65 µs a point on this machine with the CPU to itself, ~100 µs
on a busy one, so a store takes 8,000-15,000 values a second. A small model logging its loss every step
makes more than that (digits: ~22,000 a second), and the run would wait for its metrics long after
training ended (benchmarks/bench_tracking.py). SQLite itself inserts a point in a few µs.

`SqlitePoints` stores a batch as `SqlAlchemyStore.log_batch` does (`writer.SqliteWriter`, one transaction
on a connection of its own with MLflow's settings: foreign keys on, a 20 s busy timeout). The first point
of each key goes through `log_batch` itself, so MLflow validates every metric name and creates the key's
`latest_metrics` row. The tables are MLflow's: they are used only when the database's columns are exactly
those of the installed MLflow's models (`SqlMetric`, `SqlLatestMetric`), which are the columns written here;
any other store or layout gets `log_batch` (`open_points` returns None). The test suite stores the same
points both ways and compares what MLflow reads back (tests/tracking/test_sqlite_points.py).
"""

from __future__ import annotations

import logging
from typing import Any

from plugins.tracking.writer import BATCH_LOSS, Item, Point, SqliteWriter, StepSeries

log = logging.getLogger(__name__)

METRIC_COLUMNS = {"key", "value", "timestamp", "step", "is_nan", "run_uuid"}
"""The columns of MLflow's `metrics` and `latest_metrics` tables that `SqliteWriter` writes (MLflow 3)."""


class SqlitePoints:
    """Stores the metric points of one run straight into the tables of a local SQLite store."""

    def __init__(self, client: Any, run_id: str, database: str) -> None:
        self._client = client
        self._run_id = run_id
        self.database = database  # the file: a writer process opens it too
        self._writer: SqliteWriter | None = None
        self._keys: set[str] = set()  # keys whose first point went through log_batch

    def register(self, items: list[Item]) -> None:
        """Send the first point of each key not seen before through `log_batch` (raises as it does).

        Before `items` go to a writer of their own (the writer process): MLflow checks each metric name
        once, and creates the key's `latest_metrics` row, which the writer then keeps up to date.
        """
        first: dict[str, Point] = {}
        for item in items:
            if isinstance(item, StepSeries):
                if BATCH_LOSS in self._keys or BATCH_LOSS in first:
                    continue
                point = item.points()[0]
            else:
                point = item
            if point[0] not in self._keys and point[0] not in first:
                first[point[0]] = point
        if first:
            from plugins.tracking.sender import send_points

            send_points(self._client, self._run_id, list(first.values()))
            self._keys.update(first)

    def write(self, points: list[Point]) -> None:
        """Store `points` (in one transaction; raises as `log_batch` would, and then stores none of them)."""
        self.register(list(points))
        if self._writer is None:
            self._writer = SqliteWriter(self.database, self._run_id)
        self._writer.write(points)


def open_points(client: Any, run_id: str) -> SqlitePoints | None:
    """A `SqlitePoints` for `run_id` when `client`'s store is a SQLite database file of the layout written
    here, else None (the caller uses `log_batch`)."""
    try:
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
        if not isinstance(store, SqlAlchemyStore) or store.engine.dialect.name != "sqlite":
            return None
        database = store.engine.url.database
        if not database or database == ":memory:":
            return None
        for model in (SqlMetric, SqlLatestMetric):
            table = model.__table__
            if set(table.columns.keys()) != METRIC_COLUMNS:
                return None
            with store.engine.connect() as connection:
                columns = {row[1] for row in connection.exec_driver_sql(f"PRAGMA table_info({table.name})")}
            if columns != METRIC_COLUMNS:
                return None
    except Exception as exc:  # an MLflow whose store is built otherwise: log_batch it is
        log.debug("MLflow: metrics go through log_batch (%s: %s)", type(exc).__name__, exc)
        return None
    return SqlitePoints(client, run_id, str(database))
