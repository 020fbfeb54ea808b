"""The training loop: minibatches, backpropagation, optimiser steps, per-epoch metrics and hooks.

One `Trainer` is one run. It owns nothing global: its plugin manager, data, model and random generator
were built for it (`framework.build`). The per-batch path is forward, loss gradient, backward, optimiser
step, with per-batch hooks called only when some plugin implements them. The epoch's training loss and
metrics are computed once per epoch from the outputs the batches produced (kept in one preallocated
buffer), so measuring them costs no extra pass over the data.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from framework.components import Array, Loss, Metric, Optimizer, Task
from framework.dispatch import EventDispatcher
from framework.model import Model

if TYPE_CHECKING:
    from framework.config import Experiment
    from framework.pluginmanager import PluginHost

log = logging.getLogger(__name__)


@dataclass
class History:
    """Per-epoch values: `metrics["val_loss"][i]` belongs to `epochs[i]` (epochs count from 0)."""

    epochs: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        row = len(self.epochs)
        self.epochs.append(epoch)
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


@dataclass
class Split:
    """Preprocessed arrays of one split: features, the loss's targets, and the raw labels for metrics."""

    X: Array
    targets: Array
    y: Array

    def __len__(self) -> int:
        return len(self.X)


class Trainer:
    """Runs the loop for one experiment; plugins see it as the `trainer` argument of every event hook."""

    def __init__(
        self,
        *,
        experiment: Experiment,
        model: Model,
        loss: Loss,
        optimizer: Optimizer,
        metrics: dict[str, Metric],
        host: PluginHost,
        train: Split,
        val: Split | None,
        task: Task,
        rng: np.random.Generator,
    ) -> None:
        self.experiment = experiment
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.metrics = metrics
        self.host = host
        self.train = train
        self.val = val
        self.task = task
        self.rng = rng
        self.history = History()
        self.epoch = 0
        self.start_epoch = 0
        self.step = 0
        self.run_id: str | None = None
        self.stop_reason: str | None = None
        self.batch_size = min(experiment.training.batch_size, len(train))
        self.epochs = experiment.training.epochs

    @property
    def metric_names(self) -> list[str]:
        """Every name that the history will hold: train_loss, val_loss, train_<metric>, val_<metric>."""
        prefixes = ["train", "val"] if self.val is not None else ["train"]
        return [f"{p}_{m}" for p in prefixes for m in ["loss", *self.metrics]]

    def fit(self) -> FitResult:
        hooks = EventDispatcher(self.host.pm)
        try:
            hooks.call("before_fit", trainer=self)
            for epoch in range(self.start_epoch, self.epochs):
                self.epoch = epoch
                if hooks.has("before_epoch"):
                    hooks.call("before_epoch", trainer=self, epoch=epoch)
                logs = self._train_epoch(epoch, hooks)
                if self.val is not None:
                    logs.update(self._evaluate(self.val, "val"))
                if hooks.has("after_validation"):
                    hooks.call("after_validation", trainer=self, epoch=epoch, logs=logs)
                self.history.append(epoch, logs)
                if hooks.has("after_epoch"):
                    hooks.call("after_epoch", trainer=self, epoch=epoch, logs=logs)
                reasons = hooks.collect_reasons(trainer=self, epoch=epoch, logs=logs)
                if not math.isfinite(logs["train_loss"]):
                    reasons.insert(0, f"train_loss is {logs['train_loss']} at epoch {epoch}")
                if reasons:
                    self.stop_reason = "; ".join(reasons)
                    log.info("stopping after epoch %d: %s", epoch, self.stop_reason)
                    break
            else:
                self.stop_reason = f"completed {self.epochs} epochs"
            result = FitResult(self.model, self.history, self.stop_reason or "", self.run_id, self.experiment)
            hooks.call("after_fit", trainer=self, result=result)
            result.run_id = self.run_id
            return result
        except BaseException as error:
            for failure in hooks.call_all("on_fit_error", trainer=self, error=error):
                error.add_note(f"and then on_fit_error failed: {type(failure).__name__}: {failure}")
            raise

    def _train_epoch(self, epoch: int, hooks: EventDispatcher) -> dict[str, float]:
        train = self.train
        n = len(train)
        if self.experiment.training.shuffle:
            perm = self.rng.permutation(n)
            X, T, y = train.X[perm], train.targets[perm], train.y[perm]  # fancy indexing: one copy each
        else:
            X, T, y = train.X, train.targets, train.y
        model, loss, optimizer = self.model, self.loss, self.optimizer
        params, grads = model.parameters(), model.gradients()
        if optimizer.elementwise and model.flat_parameters is not None and model.flat_gradients is not None:
            params, grads = [model.flat_parameters], [model.flat_gradients]  # one array: a few numpy calls
        outputs = self._outputs_buffer(n)
        before_batch, after_backward = hooks.has("before_batch"), hooks.has("after_backward")
        after_step, after_batch = hooks.has("after_step"), hooks.has("after_batch")
        bs = self.batch_size
        for batch, start in enumerate(range(0, n, bs)):
            stop = start + bs
            xb, tb = X[start:stop], T[start:stop]
            if before_batch:
                hooks.call("before_batch", trainer=self, epoch=epoch, batch=batch)
            out = model.forward(xb, True)  # forward pass
            outputs[start:stop] = out  # kept for the epoch's training metrics
            model.backward(loss.gradient(out, tb))  # dL/d(outputs), then the chain rule through every layer
            if after_backward:
                hooks.call("after_backward", trainer=self, epoch=epoch, batch=batch)
            optimizer.step(params, grads)  # parameters updated in place
            if after_step:
                hooks.call("after_step", trainer=self, epoch=epoch, batch=batch)
            if after_batch:
                hooks.call(
                    "after_batch",
                    trainer=self,
                    epoch=epoch,
                    batch=batch,
                    step=self.step,
                    outputs=out,
                    targets=tb,
                )
            self.step += 1
        return self._metrics_of(outputs, T, y, "train")

    def _outputs_buffer(self, n: int) -> Array:
        buf: Array | None = getattr(self, "_outputs", None)
        if buf is None or buf.shape[0] != n:
            width = self.model.output_dim
            buf = np.empty((n, width), dtype=self.model.dtype)
            self._outputs = buf
        return buf

    def _evaluate(self, split: Split, prefix: str) -> dict[str, float]:
        outputs = self.model.outputs(split.X, batch_size=max(self.batch_size, 1024))
        return self._metrics_of(outputs, split.targets, split.y, prefix)

    def _metrics_of(self, outputs: Array, targets: Array, y: Array, prefix: str) -> dict[str, float]:
        with np.errstate(all="ignore"):  # a diverged model reports nan/inf; the trainer stops on it
            logs = {f"{prefix}_loss": float(self.loss.value(outputs, targets))}
            if self.metrics:
                predictions = self.loss.link(outputs)
                for name, metric in self.metrics.items():
                    logs[f"{prefix}_{name}"] = float(metric(y, predictions))
        return logs

    def evaluate(self, split: Split) -> dict[str, float]:
        """Loss and metrics of the current model on a prepared split (names without prefix)."""
        return {k.removeprefix("eval_"): v for k, v in self._evaluate(split, "eval").items()}
