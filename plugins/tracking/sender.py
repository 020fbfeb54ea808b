"""Getting metric values to MLflow without making the training loop wait: a sender thread, the batch losses."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from framework import Trainer
    from plugins.tracking.sink import SinkProcess

log = logging.getLogger(__name__)

# Server-enforced limit of one log_batch request (research/mlflow.md §3: 1001 metrics -> HTTP 400).
MAX_METRICS_PER_BATCH = 1000
# Points wait at most this long: the UI stays live, and a run of short epochs pays one request per interval.
FLUSH_INTERVAL_S = 2.0

# What the writer process stores into a local SQLite store (benchmarks/bench_tracking.py; ~100 µs a point).
POINTS_PER_SECOND = 8_000
LONG_WAIT_POINTS = 3 * POINTS_PER_SECOND
"""Tell the user when the writer still has this many points to write at the end of training."""

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step


class MetricSender:
    """Sends metric points to MLflow from a daemon thread, in batches of up to FLUSH_INTERVAL_S of points.

    `log_batch` costs about 0.1 ms per point but a whole sqlite commit (3-5 ms) or HTTP request (12-60 ms)
    per call (research/mlflow.md §3), so the training thread only queues points and this thread pays.

    With a local store (`offload`), the store's own work would still run in this process, under the
    interpreter lock the training thread needs: a long run's batches go to a writer process
    (`sink.SinkProcess`) on the other core instead. It is started by `start_writer` (the tracking callback
    calls it after the first epoch of a run that will be long) or by the first batch before the end (a run
    longer than FLUSH_INTERVAL_S, or with more than MAX_METRICS_PER_BATCH points). A short run never starts
    one: its points go to the store in one request at the end.

    When a request fails (the server went away), the sender stops trying and keeps every later point in
    `unsent`, so a dead server costs one timeout, not one per epoch; the run's end decides what to do with
    them (send them once more, or save them locally).
    """

    def __init__(self, client: Any, run_id: str, offload: bool = False) -> None:
        self._client = client
        self._run_id = run_id
        self._offload = offload
        self._sink: SinkProcess | None = None
        self._queue: queue.SimpleQueue[list[Point] | None] = queue.SimpleQueue()
        self._buffer: list[Point] = []
        self._handed = time.monotonic()
        self.unsent: list[Point] = []
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"backprop-mlflow-{run_id}", daemon=True)
        self._thread.start()

    def put(self, points: list[Point]) -> None:
        """Queue `points` (from the training thread).

        They are handed to the sender thread in batches, every FLUSH_INTERVAL_S or MAX_METRICS_PER_BATCH
        points, not at every call: waking the thread after each 2 ms epoch makes the two threads trade
        the interpreter lock 500 times a second.
        """
        self._buffer.extend(points)
        now = time.monotonic()
        if len(self._buffer) >= MAX_METRICS_PER_BATCH or now - self._handed >= FLUSH_INTERVAL_S:
            self._queue.put(self._buffer)
            self._buffer, self._handed = [], now

    def start_writer(self) -> None:
        """Start the writer process now (a local store only): the run will be long, and the writer takes
        seconds to be ready (importing MLflow, opening the store), on the other core."""
        if self._offload:
            self._queue.put([])  # any batch before the end starts it; an empty one sends nothing

    def close(self) -> list[Point]:
        """Send everything queued so far, stop the thread, and return the points that could not be sent."""
        self._queue.put(None)  # the thread sends the last points, `_buffer`, after what is queued before
        self._thread.join()
        return self.unsent

    def _run(self) -> None:
        # A batch arrives at most every FLUSH_INTERVAL_S (or MAX_METRICS_PER_BATCH points): a commit costs
        # 3-5 ms of mostly Python (ORM) work, so one per short epoch would slow training (bench_tracking.py).
        while True:
            item = self._queue.get()
            if item is not None and self._offload:  # a batch before the end: a run long enough for a writer
                self._start_sink()
            batch = item if item is not None else self._buffer  # None: the end (the training thread waits)
            if self.error is not None:
                self.unsent.extend(batch)
            elif batch:
                self._send(batch)
            if item is None:
                break
        self._buffer = []
        if self._sink is not None:
            self._close_sink()

    def _start_sink(self) -> None:
        from plugins.tracking.sink import SinkProcess

        self._offload = False  # one attempt
        try:
            self._sink = SinkProcess(str(self._client.tracking_uri), self._run_id)
            log.debug("MLflow: metric writer process %d started for run %s", self._sink.pid, self._run_id)
        except OSError as exc:  # cannot start a process: send from this thread, as for a short run
            log.info("MLflow: no metric writer process (%s); sending from the training process", exc)

    def _send(self, points: list[Point]) -> None:
        if self._sink is not None and self._sink.write(points):
            return
        try:
            send_points(self._client, self._run_id, points)
        except Exception as exc:  # keep training; the points are kept for the end of the run
            self.unsent.extend(points)
            self.error = exc
            log.warning("MLflow: logging metrics of run %s failed, keeping them locally: %s", self._run_id, exc)

    def _close_sink(self) -> None:
        """Wait for the writer process; what it could not write is sent from here (the end of the run)."""
        assert self._sink is not None
        sink, self._sink = self._sink, None
        backlog = sink.backlog()
        if backlog >= LONG_WAIT_POINTS:  # a wait of seconds: say why the run has not ended yet
            log.warning(
                "MLflow: writing the last %d metric values of run %s to the store (it takes about %d a second)",
                backlog,
                self._run_id,
                POINTS_PER_SECOND,
            )
        failed = sink.close()
        log.debug("MLflow: metric writer process %d answered %d batches", sink.pid, sink.answered)
        if failed:
            log.info("MLflow: the metric writer process left %d points (%s); sending them", len(failed), sink.error)
            self._send(failed)


def send_points(client: Any, run_id: str, points: list[Point]) -> None:
    """Log `points` in requests of at most MAX_METRICS_PER_BATCH metrics (raises on the first failure)."""
    from mlflow.entities import Metric

    metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in points]
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])


class StepLosses:
    """The batch loss every `every` steps (`tracking.log_every_n_steps`), computed once per epoch.

    Nothing runs per batch: the trainer keeps each batch's outputs for the epoch's training metrics anyway
    (`trainer.epoch_outputs`, with `epoch_targets`), so after the epoch one vectorised `per_sample` call
    gives every batch's loss, exactly what `loss.value` gives for that batch alone. The trainer keeps its
    plain loop (a per-batch hook would cost a few µs on every step). A step's timestamp is interpolated
    between the end of the previous epoch and the end of this one.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self._next_step = 0  # steps below this are logged already

    def collect(self, trainer: Trainer, start_ms: int, end_ms: int) -> list[Point]:
        """The points of the epoch's completed batches not logged yet (called after each epoch, and at the
        end of an interrupted one)."""
        outputs, targets, first = trainer.epoch_outputs, trainer.epoch_targets, trainer.epoch_first_step
        done = trainer.step - first
        if outputs is None or targets is None or done <= 0 or trainer.step <= self._next_step:
            return []
        bs = trainer.batch_size
        wanted = [s for s in range(max(first, self._next_step), trainer.step) if s % self.every == 0]
        self._next_step = trainer.step
        if not wanted:
            return []
        n = min(done * bs, len(outputs))
        losses = batch_losses(trainer.loss, outputs[:n], targets[:n], bs)
        span = end_ms - start_ms
        return [("batch_loss", losses[s - first], start_ms + span * (s - first + 1) // done, s) for s in wanted]


def batch_losses(loss: Any, outputs: Any, targets: Any, batch_size: int) -> list[float]:
    """The loss of each consecutive `batch_size` rows (the last batch may be smaller).

    One vectorised `per_sample` call for them all when the loss has one: a `value()` call per batch costs
    ~10 µs of numpy overhead on small batches, as much as a third of a training step at digits' size.
    """
    import numpy as np

    starts = np.arange(0, len(outputs), batch_size)
    per_sample = loss.per_sample(outputs, targets) if len(starts) > 1 else None
    if per_sample is None:
        return [float(loss.value(outputs[s : s + batch_size], targets[s : s + batch_size])) for s in starts]
    sizes = np.minimum(batch_size, len(outputs) - starts)
    return [float(v) for v in np.add.reduceat(np.asarray(per_sample, dtype=np.float64), starts) / sizes]
