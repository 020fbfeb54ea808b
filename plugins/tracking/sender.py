"""Getting metric values to MLflow without making the training loop wait: a sender thread, the batch losses."""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plugins.tracking.writer import Item, Point, StepSeries, count, expand

if TYPE_CHECKING:
    from framework import Trainer
    from plugins.tracking.sink import SinkProcess
    from plugins.tracking.stores import PointWriter, TrackingStore

log = logging.getLogger(__name__)

# Server-enforced limit of one log_batch request (research/mlflow.md §3: 1001 metrics -> HTTP 400).
MAX_METRICS_PER_BATCH = 1000
# Points wait at most this long: the UI stays live, and a run of short epochs pays one request per interval.
FLUSH_INTERVAL_S = 2.0
# A local store (the writer process, or the direct SQLite path) takes batches of its own size: bigger than a
# server's (one transaction each, with its fsyncs: per-step metrics of a fast model, digits' 22,000 a
# second, would commit 22 times a second), and more often (the last batch is written after training ends:
# a run waits ~7 µs for each of its points, ~35 ms at most).
LOCAL_BATCH_POINTS = 5_000
LOCAL_FLUSH_INTERVAL_S = 0.5

# What the writer process stores a second: straight into a SQLite store's tables (`sqlite_points`, 5-10 µs
# a point), or through MLflow's log_batch (any other local store; ~100 µs a point).
POINTS_PER_SECOND = {"sqlite": 100_000, "log_batch": 8_000}
LONG_WAIT_S = 3.0
"""Tell the user when the writer has this much left to write at the end of training."""


class MetricSender:
    """Sends metric points to MLflow from a daemon thread, in batches of up to FLUSH_INTERVAL_S of points.

    `log_batch` costs about 0.1 ms per point but a whole sqlite commit (3-5 ms) or HTTP request (12-60 ms)
    per call (research/mlflow.md §3), so the training thread only queues points and this thread pays. A
    SQLite store takes points straight into its tables instead (`sqlite_points`, 5-10 µs a point).

    With a local store (`offload`), the store's own work would still run in this process, under the
    interpreter lock the training thread needs: a long run's batches go to a writer process
    (`sink.SinkProcess`) on the other core instead. It is started by `start_writer` (the tracking callback
    calls it after the first epoch of a run that will be long) or by the first batch that comes
    FLUSH_INTERVAL_S or later after the run started. A short run never starts one: its points go to the
    store from this thread.

    When a request fails (the server went away), the sender stops trying and keeps every later point in
    `unsent`, so a dead server costs one timeout, not one per epoch; the run's end decides what to do with
    them (send them once more, or save them locally).
    """

    def __init__(self, store: TrackingStore, run_id: str, offload: bool = False) -> None:
        self._store = store
        self._run_id = run_id
        self._offload = offload
        self._sink: SinkProcess | None = None
        self._writer: PointWriter | None = None  # opened by the thread (`_open`)
        self._queue: queue.SimpleQueue[list[Item] | None] = queue.SimpleQueue()
        self._buffer: list[Item] = []
        self._count = 0  # points in `_buffer`
        self._batch_points = LOCAL_BATCH_POINTS if offload else MAX_METRICS_PER_BATCH
        self._interval = min(FLUSH_INTERVAL_S, LOCAL_FLUSH_INTERVAL_S) if offload else FLUSH_INTERVAL_S
        self._handed = self._born = time.monotonic()
        self._start: list[Item] = []  # the batch that asks for the writer process
        self.unsent: list[Point] = []
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"backprop-mlflow-{run_id}", daemon=True)
        self._thread.start()

    def put(self, points: list[Point], series: StepSeries | None = None) -> None:
        """Queue `points`, and an epoch's batch losses (from the training thread).

        They are handed to the sender thread in batches, every FLUSH_INTERVAL_S or MAX_METRICS_PER_BATCH
        points (LOCAL_FLUSH_INTERVAL_S or LOCAL_BATCH_POINTS with a local store), not at every call: waking
        the thread after each 2 ms epoch makes the two threads trade the interpreter lock 500 times a second.
        """
        self._buffer += points
        self._count += len(points)
        if series is not None:
            self._buffer.append(series)
            self._count += len(series)
        now = time.monotonic()
        if self._count >= self._batch_points or now - self._handed >= self._interval:
            self._queue.put(self._buffer)
            self._buffer, self._count, self._handed = [], 0, now

    def start_writer(self) -> None:
        """Start the writer process now (a local store only): the run will be long. The writer of a SQLite
        store is ready in ~30 ms; one that imports MLflow (any other local store) takes seconds."""
        if self._offload:
            self._queue.put(self._start)  # an empty batch: it sends nothing

    def close(self) -> list[Point]:
        """Send everything queued so far, stop the thread, and return the points that could not be sent."""
        self._queue.put(None)  # the thread sends the last points, `_buffer`, after what is queued before
        self._thread.join()
        return self.unsent

    def _run(self) -> None:
        # A batch arrives at most every interval (or so many points): a commit costs 3-5 ms of fsync and,
        # through log_batch, of mostly Python (ORM) work, so one per short epoch would slow training.
        while True:
            item = self._queue.get()
            # A run long enough for a writer: the callback says so, or batches still come FLUSH_INTERVAL_S in.
            if self._offload and (item is self._start or (item and time.monotonic() - self._born >= FLUSH_INTERVAL_S)):
                self._start_sink()
            batch = item if item is not None else self._buffer  # None: the end (the training thread waits)
            if self.error is not None:
                self.unsent += expand(batch)
            elif batch:
                self._send(batch)
            if item is None:
                break
        self._buffer = []
        if self._sink is not None:
            self._close_sink()

    def _open(self) -> PointWriter:
        """How this thread stores points itself (opened at the first need)."""
        if self._writer is None:
            self._writer = self._store.point_writer(self._run_id)
        return self._writer

    def _start_sink(self) -> None:
        from plugins.tracking.sink import SinkProcess

        self._offload = False  # one attempt
        try:
            database = self._open().database  # a SQLite file the light writer process writes into, or None
            self._sink = SinkProcess(self._store.tracking_uri, self._run_id, database)
            log.debug("MLflow: metric writer process %d started for run %s", self._sink.pid, self._run_id)
        except Exception as exc:  # cannot start a process: send from this thread, as for a short run
            log.info("MLflow: no metric writer process (%s); sending from the training process", exc)

    def _send(self, items: list[Item]) -> None:
        try:
            writer = self._open()
            if self._sink is not None:
                writer.register(items)  # each new key's name checked here first (the writer process does not)
                if self._sink.write(items):
                    return
            writer.write(expand(items))
        except Exception as exc:  # keep training; the points are kept for the end of the run
            self.unsent += expand(items)
            self.error = exc
            log.warning("MLflow: logging metrics of run %s failed, keeping them locally: %s", self._run_id, exc)

    def _close_sink(self) -> None:
        """Wait for the writer process; what it could not write is sent from here (the end of the run)."""
        assert self._sink is not None
        sink, self._sink = self._sink, None
        backlog = sink.backlog()
        rate = POINTS_PER_SECOND["sqlite" if self._store.tracking_uri.startswith("sqlite") else "log_batch"]
        if backlog >= LONG_WAIT_S * rate:  # a wait of seconds: say why the run has not ended yet
            log.warning(
                "MLflow: writing the last %d metric values of run %s to the store (it takes about %d a second)",
                backlog,
                self._run_id,
                rate,
            )
        failed = sink.close()
        log.debug("MLflow: metric writer process %d answered %d batches", sink.pid, sink.answered)
        if failed:
            log.info("MLflow: the metric writer process left %d points (%s); sending them", count(failed), sink.error)
            self._send(failed)


def point_writer(client: Any, run_id: str) -> Callable[[list[Point]], None]:
    """What stores a run's points through an MLflow client: straight into the tables of a local SQLite store
    (`sqlite_points`, 5-10 µs a point), else `send_points` (MLflow's `log_batch`)."""
    from plugins.tracking.sqlite_points import open_points

    direct = open_points(client, run_id)
    return direct.write if direct is not None else functools.partial(send_points, client, run_id)


def send_points(client: Any, run_id: str, points: list[Point]) -> None:
    """Log `points` in requests of at most MAX_METRICS_PER_BATCH metrics (raises on the first failure)."""
    from mlflow.entities import Metric

    metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in points]
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])


class StepLosses:
    """The batch loss every `every` steps (`tracking.log_every_n_steps`), computed once per epoch.

    Nothing runs per batch: the trainer keeps each batch's outputs for the epoch's training metrics anyway
    (`trainer.epoch_outputs`, with `epoch_targets`), and computes each sample's loss along with those
    metrics when asked (`trainer.keep_sample_losses`, set by `StepLosses(every, trainer)`; cross_entropy
    shares its softmax with them); after the epoch, per-batch means of those give every batch's loss,
    exactly what `loss.value` gives for that batch alone. An interrupted epoch has no metrics: one vectorised
    `per_sample` call on its completed batches gives theirs. The trainer keeps its plain loop (a per-batch
    hook would cost a few µs on every step). A step's timestamp is interpolated between the end of the
    previous epoch and the end of this one.
    """

    def __init__(self, every: int, trainer: Trainer | None = None) -> None:
        self.every = every
        if trainer is not None:
            trainer.keep_sample_losses = True
        self._next_step = 0  # steps below this are logged already

    def collect(self, trainer: Trainer, start_ms: int, end_ms: int) -> StepSeries | None:
        """The batch losses of the epoch's completed batches not logged yet (called after each epoch, and at
        the end of an interrupted one), or None."""
        outputs, targets, first = trainer.epoch_outputs, trainer.epoch_targets, trainer.epoch_first_step
        done, step = trainer.step - first, trainer.step
        if outputs is None or targets is None or done <= 0 or step <= self._next_step:
            return None
        lo = max(first, self._next_step)
        self._next_step = step
        steps = range(lo + (-lo) % self.every, step, self.every)  # the multiples of `every`
        if not steps:
            return None
        bs = trainer.batch_size
        n = min(done * bs, len(outputs))
        per_sample = trainer.epoch_sample_losses  # computed with the epoch's metrics (`keep_sample_losses`)
        if per_sample is not None and len(per_sample) == n:  # a new array each epoch: kept as it is
            return StepSeries(per_sample, True, bs, first, steps, (start_ms, end_ms), done)
        # An interrupted epoch, or a trainer that did not keep them: computed now (the buffers are reused).
        losses = batch_losses(trainer.loss, outputs[:n], targets[:n], bs)
        return StepSeries(losses, False, bs, first, steps, (start_ms, end_ms), done)


def batch_losses(loss: Any, outputs: Any, targets: Any, batch_size: int) -> Any:
    """The loss of each consecutive `batch_size` rows (the last batch may be smaller), a float64 array.

    One vectorised `per_sample` call for them all when the loss has one: a `value()` call per batch costs
    ~10 µs of numpy overhead on small batches, as much as a third of a training step at digits' size.
    """
    import numpy as np

    starts = np.arange(0, len(outputs), batch_size)
    per_sample = loss.per_sample(outputs, targets) if len(starts) > 1 else None
    if per_sample is None:
        return np.array([loss.value(outputs[s : s + batch_size], targets[s : s + batch_size]) for s in starts], float)
    sizes = np.minimum(batch_size, len(outputs) - starts)
    return np.add.reduceat(np.asarray(per_sample, dtype=np.float64), starts) / sizes
