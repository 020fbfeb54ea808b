"""Getting metric values to MLflow without making the training loop wait: a sender thread and a step logger."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from framework import Trainer, hookimpl

log = logging.getLogger(__name__)

# Server-enforced limit of one log_batch request (research/mlflow.md §3: 1001 metrics -> HTTP 400).
MAX_METRICS_PER_BATCH = 1000
# Points wait at most this long: the UI stays live, and a run of short epochs pays one request per interval.
FLUSH_INTERVAL_S = 2.0

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step


class MetricSender:
    """Sends metric points to MLflow from a daemon thread, merging whatever has queued up into one batch.

    `log_batch` costs about 0.1 ms per point but a whole sqlite commit (3-5 ms) or HTTP request (12-60 ms)
    per call (research/mlflow.md §3), so the training thread only queues points and this thread pays.

    When a request fails (the server went away), the sender stops trying and keeps every later point in
    `unsent`, so a dead server costs one timeout, not one per epoch; the run's end decides what to do with
    them (send them once more, or save them locally).
    """

    def __init__(self, client: Any, run_id: str) -> None:
        self._client = client
        self._run_id = run_id
        self._queue: queue.SimpleQueue[list[Point] | None] = queue.SimpleQueue()
        self.unsent: list[Point] = []
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"backprop-mlflow-{run_id}", daemon=True)
        self._thread.start()

    def put(self, points: list[Point]) -> None:
        self._queue.put(points)

    def close(self) -> list[Point]:
        """Send everything queued so far, stop the thread, and return the points that could not be sent."""
        self._queue.put(None)
        self._thread.join()
        return self.unsent

    def _run(self) -> None:
        # One request at most every FLUSH_INTERVAL_S: a commit costs 3-5 ms of mostly Python (ORM) work that
        # holds the GIL, so sending after every short epoch would slow training itself (bench_tracking.py).
        batch: list[Point] = []
        last = time.monotonic()
        while True:
            wait = max(FLUSH_INTERVAL_S - (time.monotonic() - last), 0.0) if batch else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = []
            if item is not None:
                batch.extend(item)
                if time.monotonic() - last < FLUSH_INTERVAL_S and len(batch) < MAX_METRICS_PER_BATCH:
                    continue
            if self.error is not None:
                self.unsent.extend(batch)
            elif batch:
                self._send(batch)
            batch, last = [], time.monotonic()
            if item is None:
                return

    def _send(self, points: list[Point]) -> None:
        try:
            send_points(self._client, self._run_id, points)
        except Exception as exc:  # keep training; the points are kept for the end of the run
            self.unsent.extend(points)
            self.error = exc
            log.warning("MLflow: logging metrics of run %s failed, keeping them locally: %s", self._run_id, exc)


def send_points(client: Any, run_id: str, points: list[Point]) -> None:
    """Log `points` in requests of at most MAX_METRICS_PER_BATCH metrics (raises on the first failure)."""
    from mlflow.entities import Metric

    metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in points]
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])


class StepLogger:
    """Logs the batch loss every `every` steps; registered only when `tracking.log_every_n_steps` is set.

    A separate object, because a plugin object with an `after_batch` method makes the trainer call that
    hook on every batch: with per-step logging off, the tracking callback adds nothing to the batch loop.

    On the batch path it only keeps a copy of the batch's outputs (the trainer reuses that buffer) and a
    reference to its targets; the losses are computed once per epoch, in `after_epoch`, and handed to the
    sender with the epoch's other metrics, so the store is never touched from the training thread.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.sender: MetricSender | None = None  # set by the tracking callback's before_fit
        self._pending: list[tuple[int, int, Any, Any]] = []  # step, timestamp (ms), outputs, targets

    @hookimpl
    def after_batch(self, step: int, outputs: Any, targets: Any) -> None:
        if step % self.every == 0:
            self._pending.append((step, int(time.time() * 1000), outputs.copy(), targets))

    @hookimpl(tryfirst=True)
    def after_epoch(self, trainer: Trainer) -> None:
        self.flush(trainer)

    def flush(self, trainer: Trainer) -> None:
        """Compute the pending batch losses and queue them (also called when the run ends early)."""
        pending, self._pending = self._pending, []
        if not pending or self.sender is None:
            return
        losses = batch_losses(trainer.loss, [out for _, _, out, _ in pending], [tb for _, _, _, tb in pending])
        self.sender.put(
            [("batch_loss", loss, ts, step) for (step, ts, _, _), loss in zip(pending, losses, strict=True)]
        )


def batch_losses(loss: Any, outputs: list[Any], targets: list[Any]) -> list[float]:
    """Each batch's loss; one vectorised `per_sample` call for them all when the loss has one.

    A `value()` call per batch costs ~10 µs of numpy overhead on small batches, as much as a third of a
    training step at digits' size; one call over the concatenated batches costs about that in total.
    """
    import numpy as np

    per_sample = loss.per_sample(np.concatenate(outputs), np.concatenate(targets)) if len(outputs) > 1 else None
    if per_sample is None:
        return [float(loss.value(out, tb)) for out, tb in zip(outputs, targets, strict=True)]
    sizes = np.array([len(out) for out in outputs])
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return [float(v) for v in np.add.reduceat(np.asarray(per_sample, dtype=np.float64), starts) / sizes]
