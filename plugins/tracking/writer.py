"""Metric points on their way to the store, and the light writer process of a SQLite store.

This module imports the standard library only, because it is also the program of the writer process that a
long run on a SQLite store starts (`sink.SinkProcess`):

    python -I plugins/tracking/writer.py DATABASE RUN_ID

That process starts in ~30 ms and 12 MB; one that imports MLflow to write through its store takes ~3.5 s
and 220 MB, and those seconds of importing on the machine's other core slowed training by 15-50 % while they
lasted (benchmarks/bench_tracking.py, and a loop of such imports beside an untracked run).

What is here:

- `StepSeries`: an epoch's batch losses kept as the trainer's loss values until they are written, and
  `expand`/`count`, the points and the number of points of a batch of points and series;
- `encode`/`batches`: a batch as it goes down the writer's stdin, one JSON line (`{"points": [[key, value,
  timestamp_ms, step], ...], "series": [...]}`) then each series' values as raw float64 bytes;
- `SqliteWriter`: points into the `metrics` and `latest_metrics` tables of an MLflow SQLite database, as
  MLflow's `log_batch` stores them (`sqlite_points` checks the layout and when to use it);
- `main`: the writer process. It answers `{"ready": true}` on stdout once the database is open, then one
  line per batch: `{"ok": true}` once it is committed, or `{"error": "..."}`, after which it writes nothing
  more and refuses every later batch (the parent keeps those points). It exits at the end of stdin.
"""

from __future__ import annotations

import array
import contextlib
import json
import math
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step

BATCH_LOSS = "batch/loss"
"""The metric of the per-step losses (`tracking.log_every_n_steps`): its own chart section, "batch", in MLflow's UI."""

MAX_FLOAT = 1.7976931348623157e308  # what MLflow stores for ±inf (SQL has no infinities)

INSERT = "INSERT OR IGNORE INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)"
LATEST = "SELECT step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key = ?"
UPDATE_LATEST = (
    "UPDATE latest_metrics SET value = ?, timestamp = ?, step = ?, is_nan = ? WHERE run_uuid = ? AND key = ?"
)
INSERT_LATEST = "INSERT INTO latest_metrics (value, timestamp, step, is_nan, run_uuid, key) VALUES (?, ?, ?, ?, ?, ?)"
BUSY_TIMEOUT_S = 20.0  # MLflow's own (PRAGMA busy_timeout = 20000): the training process writes too

NICENESS = 19
"""The writer yields the CPU to training: on a busy 2-core machine it runs in the time training leaves."""


class StepSeries:
    """One epoch's batch losses, kept as the trainer's loss values until they are written.

    Turning 45 batch losses into points (per-batch means, timestamps, 45 tuples) takes ~50 µs on the training
    thread in the middle of a run (its caches full of the model's data), 2-3 % of a 2 ms digits epoch; making
    this object takes ~1 µs. The points are made where they are written (`points()`): in the writer process,
    or by the sender thread.
    """

    __slots__ = ("batch_size", "done", "end_ms", "first", "per_sample", "start_ms", "steps", "values")

    def __init__(
        self, values: Any, per_sample: bool, batch_size: int, first: int, steps: range, span: Sequence[int], done: int
    ) -> None:
        self.values = values  # each sample's loss (`per_sample`), or each batch's: a sequence of floats
        self.per_sample = per_sample
        self.batch_size = batch_size
        self.first = first  # the global step of the epoch's first batch
        self.steps = steps  # the steps to log
        self.start_ms, self.end_ms = span  # the end of the previous epoch, and of this one
        self.done = done  # batches the epoch completed

    def __len__(self) -> int:
        return len(self.steps)

    def points(self) -> list[Point]:
        values = self.values.tolist() if hasattr(self.values, "tolist") else list(self.values)
        if self.per_sample:  # each batch's loss is the mean of its samples' (the last batch may be smaller)
            bs, n = self.batch_size, len(values)
            values = [math.fsum(values[i : i + bs]) / min(bs, n - i) for i in range(0, n, bs)]
        start, span, first, done = self.start_ms, self.end_ms - self.start_ms, self.first, self.done
        # A step's timestamp is interpolated: the batches' own times are not kept.
        return [(BATCH_LOSS, values[s - first], start + span * (s - first + 1) // done, s) for s in self.steps]


Item = Point | StepSeries  # what the sender queues: points, and batch losses not yet made into points


def expand(items: list[Item]) -> list[Point]:
    """The points of `items`."""
    points: list[Point] = []
    for item in items:
        if isinstance(item, StepSeries):
            points += item.points()
        else:
            points.append(item)
    return points


def count(items: list[Item]) -> int:
    """How many points `items` make."""
    return sum(len(item) if isinstance(item, StepSeries) else 1 for item in items)


SERIES_FIELDS = ("per_sample", "batch_size", "first", "done")


def float64_bytes(values: Any) -> bytes:
    """`values` as native float64 bytes (a numpy array without a Python loop)."""
    if hasattr(values, "astype"):
        return bytes(values.astype("=f8").tobytes())
    return array.array("d", values).tobytes()


def encode(items: list[Item]) -> bytes:
    """A batch as the writer reads it (`batches`): a JSON line, then the series' values as float64 bytes."""
    points, series, data = [], [], []
    for item in items:
        if isinstance(item, StepSeries):
            steps = item.steps
            header = {field: getattr(item, field) for field in SERIES_FIELDS}
            raw = float64_bytes(item.values)
            header.update(steps=[steps.start, steps.stop, steps.step], span=[item.start_ms, item.end_ms], n=len(raw))
            series.append(header)
            data.append(raw)
        else:
            points.append(item)
    return json.dumps({"points": points, "series": series}).encode() + b"\n" + b"".join(data)


def batches(stream: IO[bytes]) -> Iterator[list[Point]]:
    """The points of each batch on `stream` (`encode`), until it ends (a batch cut short ends it too)."""
    for line in iter(stream.readline, b""):
        try:
            message = json.loads(line)
        except ValueError:
            return
        items: list[Item] = [(key, value, stamp, step) for key, value, stamp, step in message["points"]]
        for header in message["series"]:
            raw = stream.read(header["n"])
            if len(raw) < header["n"]:
                return
            values = array.array("d")
            values.frombytes(raw)
            per_sample, batch_size, first, done = (header[field] for field in SERIES_FIELDS)
            items.append(
                StepSeries(values, per_sample, batch_size, first, range(*header["steps"]), header["span"], done)
            )
        yield expand(items)


def stored_value(value: float) -> tuple[float, int]:
    """A metric value as MLflow stores it, and its `is_nan` flag (`SqlAlchemyStore.sanitize_metric_value`)."""
    if value != value:
        return 0.0, 1
    if math.isinf(value):
        return math.copysign(MAX_FLOAT, value), 0
    return value, 0


class SqliteWriter:
    """Writes a run's metric points into the tables of an MLflow SQLite database, as `log_batch` stores them:

    - one row per point in `metrics`, NaN stored as 0 with `is_nan`, ±inf as ±max float; a point already
      stored (same key, timestamp, step, value) is not stored twice;
    - `latest_metrics` keeps, per key, the point with the greatest (step, timestamp, value); a key's first
      point creates its row.

    One transaction per `write`; on an error nothing of the batch is stored.
    """

    def __init__(self, database: str, run_id: str) -> None:
        self._run_id, self._database = run_id, database
        # check_same_thread=False: opened by one thread, used by one other at a time (the sender's).
        self._connection = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        self._connection.execute("PRAGMA foreign_keys = ON")  # as MLflow's sessions: a run that exists

    def write(self, points: list[Point]) -> None:
        run_id = self._run_id
        rows = []
        best: dict[str, tuple[int, int, float, int]] = {}  # key -> the latest point: step, timestamp, value, is_nan
        for key, value, timestamp, step in points:
            stored, is_nan = stored_value(float(value))
            candidate = (int(step), int(timestamp), stored, is_nan)
            rows.append((key, stored, candidate[1], candidate[0], is_nan, run_id))
            if key not in best or candidate[:3] > best[key][:3]:
                best[key] = candidate
        try:
            with self._connection:  # one transaction: committed, or rolled back on an error
                self._connection.executemany(INSERT, rows)  # the write lock is ours from here
                for key, (step, timestamp, value, is_nan) in best.items():
                    row = self._connection.execute(LATEST, (run_id, key)).fetchone()
                    if row is None:
                        self._connection.execute(INSERT_LATEST, (value, timestamp, step, is_nan, run_id, key))
                    elif (step, timestamp, value) > tuple(row):
                        self._connection.execute(UPDATE_LATEST, (value, timestamp, step, is_nan, run_id, key))
        except sqlite3.Error as exc:  # "FOREIGN KEY constraint failed" alone names neither run nor file
            raise RuntimeError(f"storing metrics of run {run_id} in {self._database}: {exc}") from exc

    def close(self) -> None:
        self._connection.close()


def serve(write: Any, answers: IO[str]) -> None:
    """The writer's loop: store each batch of stdin with `write`, answer each on `answers`."""
    error: str | None = None
    for points in batches(sys.stdin.buffer):
        if error is None:
            try:
                write(points)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        answers.write(json.dumps({"error": error} if error else {"ok": True}) + "\n")
        answers.flush()


def main(argv: list[str]) -> None:
    """The light writer process: `writer.py DATABASE RUN_ID`."""
    database, run_id = argv
    if hasattr(os, "nice"):  # POSIX
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
    answers, sys.stdout = sys.stdout, sys.stderr  # stdout is the protocol's: anything else printed goes to stderr
    write: Any
    try:
        write = SqliteWriter(database, run_id).write
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"

        def write(points: list[Point]) -> None:
            raise RuntimeError(message)

    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    serve(write, answers)


if __name__ == "__main__":
    main(sys.argv[1:])
