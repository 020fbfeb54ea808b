"""Learning-rate schedules, as callbacks: step, exponential, cosine with warm-up, reduce-on-plateau.

Each sets `trainer.optimizer.lr` once per epoch (never per batch), so the rate is constant within an epoch;
the trainer records the rate each epoch trained with as `lr` in the history (and tracking logs it). The
epoch-based schedules (step_lr, exponential_lr, cosine_lr) compute the rate from the epoch number and the
optimiser's configured `lr` (the base rate) in `before_epoch`; reduce_lr_on_plateau lowers the current rate
after an epoch whose monitored metric did not improve. Use one schedule per run. Their state is saved in
checkpoints, so a resumed run follows the same rates.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from framework import Callback, Params, Trainer, hookimpl
from framework.errors import ConfigError
from plugins.early_stopping import Mode, monitored_direction


class _EpochSchedule(Callback):
    """A schedule lr(epoch) = base_lr · factor(epoch), applied at the start of every epoch."""

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.base_lr: float | None = None

    def factor(self, epoch: int, epochs: int) -> float:
        raise NotImplementedError

    @hookimpl
    def before_fit(self, trainer: Trainer) -> None:
        if self.base_lr is None:  # not restored from a checkpoint: the configured rate is the base
            self.base_lr = trainer.optimizer.lr

    @hookimpl
    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        assert self.base_lr is not None
        trainer.optimizer.lr = self.base_lr * self.factor(epoch, trainer.epochs)

    def state_dict(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lr = None if state.get("base_lr") is None else float(state["base_lr"])


class StepParams(Params):
    step_size: int = Field(10, ge=1, description="Epochs between two decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="Factor applied to the rate at every decay.")


class StepLR(_EpochSchedule):
    """Step decay: lr = base_lr · γ^⌊epoch / step_size⌋ (epochs counted from 0)."""

    name: ClassVar[str] = "step_lr"
    Params: ClassVar[type[Params]] = StepParams
    params: StepParams

    def factor(self, epoch: int, epochs: int) -> float:
        return float(self.params.gamma ** (epoch // self.params.step_size))


class ExponentialParams(Params):
    gamma: float = Field(0.95, gt=0, le=1, description="Factor applied to the rate after every epoch.")


class ExponentialLR(_EpochSchedule):
    """Exponential decay: lr = base_lr · γ^epoch (epochs counted from 0)."""

    name: ClassVar[str] = "exponential_lr"
    Params: ClassVar[type[Params]] = ExponentialParams
    params: ExponentialParams

    def factor(self, epoch: int, epochs: int) -> float:
        return float(self.params.gamma**epoch)


class CosineParams(Params):
    warmup_epochs: int = Field(0, ge=0, description="Epochs of linear warm-up before the cosine decay.")
    min_lr: float = Field(0.0, ge=0, description="The rate the cosine decays towards (never quite reached).")


class CosineLR(_EpochSchedule):
    """Cosine decay with linear warm-up over E epochs and W warm-up epochs (epochs e counted from 0).

    lr = base_lr · (e+1)/W for e < W; then lr = min_lr + (base_lr - min_lr) · (1 + cos(π·(e-W)/(E-W))) / 2,
    which starts at base_lr and approaches min_lr in the last epoch.
    """

    name: ClassVar[str] = "cosine_lr"
    Params: ClassVar[type[Params]] = CosineParams
    params: CosineParams

    def validate_against(self, trainer: Trainer) -> None:
        if self.params.warmup_epochs >= trainer.epochs:
            raise ConfigError(
                f"callbacks.cosine_lr.warmup_epochs: {self.params.warmup_epochs} warm-up epochs leave no epoch "
                f"to decay in (training.epochs = {trainer.epochs})"
            )
        if self.params.min_lr >= trainer.optimizer.lr:
            raise ConfigError(
                f"callbacks.cosine_lr.min_lr: {self.params.min_lr:g} is not below optimizer.lr = "
                f"{trainer.optimizer.lr:g}"
            )

    def factor(self, epoch: int, epochs: int) -> float:
        assert self.base_lr is not None
        warmup = self.params.warmup_epochs
        if epoch < warmup:
            return (epoch + 1) / warmup
        progress = (epoch - warmup) / (epochs - warmup)
        floor = self.params.min_lr / self.base_lr
        return floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2


class PlateauParams(Params):
    monitor: str = Field("val_loss", description="Metric to watch, as named in the history.")
    mode: Mode = Field("auto", description="min, max, or auto: the metric's declared direction.")
    factor: float = Field(0.1, gt=0, lt=1, description="The rate is multiplied by this on a plateau.")
    patience: int = Field(
        10, ge=0, description="Lower the rate after this many epochs in a row without improvement (as Keras)."
    )
    min_delta: float = Field(1e-4, ge=0, description="Smallest change that counts as an improvement.")
    cooldown: int = Field(0, ge=0, description="Epochs after a reduction during which no plateau is counted.")
    min_lr: float = Field(0.0, ge=0, description="The rate is never lowered below this.")


class ReduceLROnPlateau(Callback):
    """Reduce on plateau: lr ← max(lr · factor, min_lr) after `patience` epochs in a row without improvement."""

    name: ClassVar[str] = "reduce_lr_on_plateau"
    Params: ClassVar[type[Params]] = PlateauParams
    params: PlateauParams

    def __init__(self, params: Params | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.direction: Literal["min", "max"] = "min"
        self.best = math.inf
        self.wait = 0
        self.cooldown_left = 0

    def validate_against(self, trainer: Trainer) -> None:
        where = "callbacks.reduce_lr_on_plateau"
        self.direction = monitored_direction(trainer, self.params.monitor, self.params.mode, where)
        self.best = math.inf if self.direction == "min" else -math.inf

    def _improved(self, value: float) -> bool:
        if self.direction == "min":
            return value < self.best - self.params.min_delta
        return value > self.best + self.params.min_delta

    @hookimpl
    def after_epoch(self, trainer: Trainer, logs: dict[str, float]) -> None:
        value = logs[self.params.monitor]
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if math.isfinite(value) and self._improved(value):
            self.best, self.wait = value, 0
            return
        if self.cooldown_left > 0:
            return
        self.wait += 1
        if self.wait >= self.params.patience:  # the patience-th epoch without improvement, as Keras
            lr = trainer.optimizer.lr
            new_lr = max(lr * self.params.factor, self.params.min_lr)
            if new_lr < lr and new_lr > 0:
                trainer.optimizer.lr = new_lr
            self.cooldown_left = self.params.cooldown
            self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.direction = state["direction"]
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_left = int(state["cooldown_left"])


@hookimpl
def register_callbacks() -> list[type[Callback]]:
    return [StepLR, ExponentialLR, CosineLR, ReduceLROnPlateau]
