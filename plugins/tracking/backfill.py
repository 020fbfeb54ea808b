"""The epochs a killed run trained but never logged, sent when it resumes (issue 19: nothing lost).

Metric points reach the store in batches, a little behind training; a run killed with SIGKILL has checkpoints
of epochs whose points never arrived. Its checkpoint's history holds them: when the run resumes, every epoch of
the restored history after the last one the store holds (`train_loss`'s last step) is logged again, each key
of the history at that epoch's step. (What the history does not keep, `system/epoch_seconds` and the gradient
statistics of those epochs, cannot be recovered.) Epochs the store holds although the checkpoint does not (a
kill after an epoch's points were sent, before its checkpoint) are retrained but not logged twice.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from plugins.tracking.writer import Point

log = logging.getLogger(__name__)

KEY = "train_loss"  # logged by every run at every epoch


def last_logged_step(store: Any, run_id: str) -> int:
    """The last step of `train_loss` the store holds for the run (-1: none)."""
    local = getattr(store, "store", None)
    if local is not None and hasattr(local, "connection"):
        row = local.connection.execute(
            "SELECT MAX(step) FROM metrics WHERE run_uuid = ? AND key = ?", (run_id, KEY)
        ).fetchone()
        return -1 if row is None or row[0] is None else int(row[0])
    history = store.client.get_metric_history(run_id, KEY)
    return max((int(m.step) for m in history), default=-1)


def missing_points(epochs: list[int], metrics: dict[str, list[float]], last: int) -> list[Point]:
    """The points of the history's epochs after step `last` (the NaN gaps of a key added later skipped)."""
    now = int(time.time() * 1000)
    return [
        (key, value, now, epoch)
        for row, epoch in enumerate(epochs)
        if epoch > last
        for key, column in metrics.items()
        if not math.isnan(value := column[row])
    ]


def backfill(sender: Any, store: Any, run_id: str, history: Any) -> int:
    """Queue the history's points the store lacks on `sender`; return the last step the store held before
    (-1: none, or it could not be asked). The resumed run skips epochs up to it: it retrains them bit for bit,
    and their points are in the store already."""
    try:
        last = last_logged_step(store, run_id)
    except Exception as exc:  # the resumed run matters more than its old points
        log.warning("MLflow: could not look for the unlogged epochs of run %s: %s", run_id, exc)
        return -1
    points = missing_points(list(history.epochs), dict(history.metrics), last)
    if points:
        sender.put(points)
        log.info("MLflow: logging %d points of epochs run %s trained before it was killed", len(points), run_id)
    return last
