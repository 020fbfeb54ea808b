"""Learning-rate schedules: the rate of every epoch, as recorded in the history, against hand-computed values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from framework import Experiment, Trainer, fit, hookimpl
from framework.errors import ConfigError
from tests.helpers import xor_config


def rates(callbacks: dict[str, Any], epochs: int, lr: float = 1.0, extra: list[object] | None = None) -> list[float]:
    config = xor_config(
        optimizer={"name": "sgd", "lr": lr},
        training={"epochs": epochs, "batch_size": 4, "shuffle": False},
        callbacks=callbacks,
    )
    return fit(Experiment.from_dict(config), callbacks=extra or []).history.metrics["lr"]


def test_step_decay() -> None:
    # lr = 1 · 0.5^⌊e/2⌋ for e = 0..4
    assert rates({"step_lr": {"step_size": 2, "gamma": 0.5}}, 5) == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_exponential_decay() -> None:
    assert rates({"exponential_lr": {"gamma": 0.5}}, 4, lr=0.8) == [0.8, 0.4, 0.2, 0.1]


def test_cosine_with_warm_up() -> None:
    # E = 6, W = 2, base 1, min 0: warm-up 1/2, 2/2; then (1 + cos(π·k/4))/2 for k = 0..3:
    # 1, (1 + √½)/2 ≈ 0.853553, 1/2, (1 - √½)/2 ≈ 0.146447
    expected = [0.5, 1.0, 1.0, (1 + 0.5**0.5) / 2, 0.5, (1 - 0.5**0.5) / 2]
    assert rates({"cosine_lr": {"warmup_epochs": 2}}, 6) == pytest.approx(expected, rel=1e-12)


def test_cosine_rejects_a_warm_up_that_leaves_nothing() -> None:
    with pytest.raises(ConfigError, match="warmup_epochs: 3 warm-up epochs leave no epoch"):
        rates({"cosine_lr": {"warmup_epochs": 3}}, 3)


def test_reduce_on_plateau() -> None:
    class Script:
        """train_loss: 5, 4, 4, 4, 4, 4, 3: no improvement from epoch 2 on until epoch 6."""

        @hookimpl
        def after_validation(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
            logs["train_loss"] = [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.0][epoch]

    plateau = {"reduce_lr_on_plateau": {"monitor": "train_loss", "patience": 2, "factor": 0.5, "min_delta": 0}}
    # Epochs 2 and 3 do not improve: the second (patience 2) halves the rate after epoch 3 (epoch 4 trains
    # at 0.5); epochs 4 and 5 again: after epoch 5 it halves again (epoch 6: 0.25); epoch 6 improves.
    assert rates(plateau, 8, extra=[Script()]) == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(ConfigError, match="Did you mean 'train_loss'"):
        rates({"reduce_lr_on_plateau": {"monitor": "train_los"}}, 2)


def test_the_schedule_state_is_the_base_rate() -> None:
    from plugins.schedules import StepLR

    schedule = StepLR(step_size=1)
    schedule.load_state_dict({"base_lr": 0.3})
    assert schedule.state_dict() == {"base_lr": 0.3} and math.isclose(schedule.factor(2, 5), 0.01)
