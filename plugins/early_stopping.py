"""Early stopping: stop when a monitored metric has not improved for `patience` epochs.

The direction comes from `mode`, or else from the metric's own declaration (`Metric.direction`; losses are
minimised), never from the metric's name. The monitored metric must exist: that is checked before the
first epoch. With `restore_best_weights` (the default), the best epoch's weights are put back whenever
training ends normally, also when the epochs simply run out.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from framework import Array, Callback, FitResult, Params, Trainer, hookimpl
from framework.errors import ConfigError, did_you_mean


class EarlyStoppingParams(Params):
    monitor: str = Field("val_loss", description="Metric to watch, as named in the history (e.g. val_loss).")
    mode: Literal["auto", "min", "max"] = Field(
        "auto",
        description="min: lower is better; max: higher is better; auto: the metric's declared direction.",
    )
    patience: int = Field(5, ge=0, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")
    restore_best_weights: bool = Field(True, description="Put back the best epoch's weights at the end.")


class EarlyStopping(Callback):
    """Stops training when `monitor` stops improving by more than `min_delta` for `patience` epochs."""

    name: ClassVar[str] = "early_stopping"
    Params: ClassVar[type[Params]] = EarlyStoppingParams
    params: EarlyStoppingParams

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.direction: Literal["min", "max"] = "min"
        self.best = math.inf
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: list[Array] | None = None

    def validate_against(self, trainer: Trainer) -> None:
        monitor = self.params.monitor
        available = trainer.metric_names
        if monitor not in available:
            hint = did_you_mean(monitor, available)
            raise ConfigError(
                f"callbacks.early_stopping.monitor: metric {monitor!r} is not computed in this run. "
                f"Available: {', '.join(available)}." + (f" Did you mean {hint!r}?" if hint else "")
            )
        if self.params.mode != "auto":
            self.direction = self.params.mode
        else:
            base = monitor.split("_", 1)[1]
            metric = trainer.metrics.get(base)
            self.direction = "min" if metric is None else metric.direction  # a loss is minimised
        self.best = math.inf if self.direction == "min" else -math.inf

    def _improved(self, value: float) -> bool:
        if self.direction == "min":
            return value < self.best - self.params.min_delta
        return value > self.best + self.params.min_delta

    @hookimpl
    def should_stop(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> str | None:
        value = logs[self.params.monitor]
        if math.isfinite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.params.restore_best_weights:
                self.best_weights = trainer.model.get_weights()
            return None
        self.wait += 1
        if self.wait > self.params.patience:
            return (
                f"early stopping: {self.params.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch})"
            )
        return None

    @hookimpl
    def after_fit(self, result: FitResult) -> None:
        if self.params.restore_best_weights and self.best_weights is not None:
            result.model.set_weights(self.best_weights)
            result.restored_epoch = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}


@hookimpl
def register_callbacks() -> list[type[Callback]]:
    return [EarlyStopping]
