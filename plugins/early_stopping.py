"""Early stopping: stop when a monitored metric has not improved for `patience` epochs.

The direction comes from `mode`, or else from the metric's own declaration (`Metric.direction`; losses are
minimised), never from the metric's name. The monitored metric must exist: that is checked before the
first epoch, with a did-you-mean. With `restore_best_weights` (the default), the best epoch's weights are
put back however training ends: early stop, epochs run out, a NaN loss, Ctrl-C or an error. Its state
(best value and epoch, epochs waited, best weights) goes into checkpoints, so a resumed run stops exactly
where the uninterrupted one would.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from framework import Array, Callback, FitResult, Params, Trainer, hookimpl
from framework.errors import ConfigError, did_you_mean

Mode = Literal["auto", "min", "max"]


def monitored_direction(trainer: Trainer, monitor: str, mode: Mode, where: str) -> Literal["min", "max"]:
    """The direction of `monitor` in this run: `mode`, or the metric's declared one; unknown names are errors."""
    available = trainer.metric_names
    if monitor not in available:
        hint = did_you_mean(monitor, available)
        raise ConfigError(
            f"{where}.monitor: metric {monitor!r} is not computed in this run. "
            f"Available: {', '.join(available)}." + (f" Did you mean {hint!r}?" if hint else "")
        )
    if mode != "auto":
        return mode
    metric = trainer.metrics.get(monitor.split("_", 1)[1])
    return "min" if metric is None else metric.direction  # train_loss and val_loss are minimised


class EarlyStoppingParams(Params):
    monitor: str = Field("val_loss", description="Metric to watch, as named in the history (e.g. val_loss).")
    mode: Mode = Field(
        "auto",
        description="min: lower is better; max: higher is better; auto: the metric's declared direction.",
    )
    patience: int = Field(
        5, ge=0, description="Stop after this many epochs in a row without improvement (as Keras; 0 acts as 1)."
    )
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")
    baseline: float | None = Field(
        None, description="A value to beat: epochs that do not beat it count as epochs without improvement."
    )
    start_from_epoch: int = Field(
        0, ge=0, description="Epochs (counting from 0) before this one are neither monitored nor counted."
    )
    restore_best_weights: bool = Field(True, description="Put back the best epoch's weights at the end.")


class EarlyStopping(Callback):
    """Stops training when `monitor` has not improved by more than `min_delta` for `patience` epochs in a row."""

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
        self.direction = monitored_direction(trainer, self.params.monitor, self.params.mode, "callbacks.early_stopping")
        self.best = math.inf if self.direction == "min" else -math.inf
        if self.params.baseline is not None:
            self.best = self.params.baseline  # to be beaten (by more than min_delta) to count as improving

    def _improved(self, value: float) -> bool:
        if self.direction == "min":
            return value < self.best - self.params.min_delta
        return value > self.best + self.params.min_delta

    @hookimpl
    def should_stop(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> str | None:
        if epoch < self.params.start_from_epoch:
            return None
        value = logs[self.params.monitor]
        if math.isfinite(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.params.restore_best_weights:
                self.best_weights = trainer.model.get_weights()
            return None
        self.wait += 1
        # Keras, Lightning and scikit-learn stop on the patience-th epoch without improvement: so do we.
        if self.wait >= self.params.patience:
            if self.best_epoch is None:
                return (
                    f"early stopping: {self.params.monitor} did not beat the baseline {self.best:.6g} "
                    f"in {self.wait} epochs"
                )
            return (
                f"early stopping: {self.params.monitor} did not improve for {self.wait} epochs "
                f"(best {self.best:.6g} at epoch {self.best_epoch + 1})"
            )
        return None

    def _restore(self, trainer: Trainer) -> int | None:
        if self.params.restore_best_weights and self.best_weights is not None:
            trainer.model.set_weights(self.best_weights)
            return self.best_epoch
        return None

    @hookimpl
    def after_fit(self, trainer: Trainer, result: FitResult) -> None:
        # Early stop, epochs run out, or a NaN loss (the trainer then ended the run normally).
        restored = self._restore(trainer)
        if restored is not None:
            result.restored_epoch = restored

    @hookimpl
    def on_fit_error(self, trainer: Trainer) -> None:
        # Ctrl-C, SIGTERM or an error: the trainer's model (kept by a notebook, say) gets the best weights.
        # The trainer has already written its interrupt checkpoint with the weights of the last epoch.
        self._restore(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.direction = state["direction"]
        self.best = float(state["best"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.wait = int(state["wait"])
        weights = state["best_weights"]
        self.best_weights = None if weights is None else [w.copy() for w in weights]


@hookimpl
def register_callbacks() -> list[type[Callback]]:
    return [EarlyStopping]
