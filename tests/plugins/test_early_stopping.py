"""Early stopping: checked before training, direction from the metric, best weights restored on any end."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from framework import Experiment, Trainer, fit, hookimpl
from framework.errors import ConfigError
from tests.helpers import digits_config, xor_config


class Scripted:
    """Replaces the monitored value with a scripted sequence, and records the weights after each epoch."""

    def __init__(self, key: str, values: list[float]) -> None:
        self.key, self.values = key, values
        self.weights: list[list[np.ndarray]] = []

    @hookimpl
    def after_validation(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        logs[self.key] = self.values[epoch]
        self.weights.append(trainer.model.get_weights())


def run(values: list[float], epochs: int | None = None, **params: Any) -> tuple[Any, Scripted]:
    script = Scripted("train_loss", values)
    config = xor_config(
        training={"epochs": epochs or len(values), "batch_size": 4, "shuffle": False},
        callbacks={"early_stopping": {"monitor": "train_loss", **params}},
    )
    return fit(Experiment.from_dict(config), callbacks=[script]), script


def assert_weights(model: Any, expected: list[np.ndarray]) -> None:
    for w, e in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(w, e)


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best() -> None:
    # best 1.0 at epoch 1 (0-based); epochs 2, 3 and 4 do not improve: the third (patience 3) stops.
    result, script = run([3.0, 1.0, 2.0, 1.5, 1.2, 0.1], patience=3)
    assert result.history.epochs == [0, 1, 2, 3, 4]
    assert "did not improve for 3 epochs" in result.stop_reason
    assert result.restored_epoch == 1
    assert_weights(result.model, script.weights[1])


def test_restores_the_best_weights_also_when_the_epochs_run_out() -> None:
    result, script = run([3.0, 1.0, 2.0, 2.5], patience=10)
    assert result.stop_reason == "completed 4 epochs"
    assert result.restored_epoch == 1
    assert_weights(result.model, script.weights[1])
    assert result.final_metrics["train_loss"] == 1.0


def test_restores_the_best_weights_on_ctrl_c() -> None:
    class Interrupt:
        @hookimpl
        def after_epoch(self, epoch: int) -> None:
            if epoch == 3:
                raise KeyboardInterrupt

    script = Scripted("train_loss", [3.0, 1.0, 2.0, 2.5, 2.6])
    config = xor_config(
        training={"epochs": 5, "batch_size": 4, "shuffle": False, "checkpoint_on_interrupt": False},
        callbacks={"early_stopping": {"monitor": "train_loss", "patience": 10}},
    )
    from framework.build import prepare_run

    prepared = prepare_run(Experiment.from_dict(config), [script, Interrupt()], track=False)
    with pytest.raises(KeyboardInterrupt):
        prepared.trainer.fit()
    assert_weights(prepared.trainer.model, script.weights[1])


def test_baseline_must_be_beaten() -> None:
    # Nothing beats the baseline 0.5: every epoch counts as no improvement, and no weights are restored.
    result, _ = run([3.0, 1.0, 2.0, 0.9, 0.8], baseline=0.5, patience=2)
    assert result.history.epochs == [0, 1]
    assert "did not beat the baseline 0.5 in 2 epochs" in result.stop_reason
    assert result.restored_epoch is None
    # Beating it once makes that epoch the best.
    result, _ = run([3.0, 0.4, 2.0, 0.9, 0.8], baseline=0.5, patience=2)
    assert result.restored_epoch == 1 and result.history.epochs == [0, 1, 2, 3]


def test_start_from_epoch_ignores_the_first_epochs() -> None:
    # Epochs 0-2 are not monitored (their 0.1 would otherwise be the best); from epoch 3 on: best 1.0 at 3.
    result, script = run([0.1, 0.1, 0.1, 1.0, 2.0, 2.0, 0.5], start_from_epoch=3, patience=2)
    assert result.history.epochs == [0, 1, 2, 3, 4, 5]
    assert result.restored_epoch == 3
    assert_weights(result.model, script.weights[3])


def test_direction_comes_from_the_metric_declaration() -> None:
    config = digits_config(training={"epochs": 2}, callbacks={"early_stopping": {"monitor": "val_accuracy"}})
    from framework.build import prepare_run

    prepared = prepare_run(Experiment.from_dict(config), track=False)
    early = next(cb for cb in prepared.callbacks if getattr(cb, "name", "") == "early_stopping")
    assert early.direction == "max" and early.best == -math.inf  # type: ignore[attr-defined]


def test_an_unknown_monitor_is_rejected_before_training_with_a_suggestion() -> None:
    config = digits_config(callbacks={"early_stopping": {"monitor": "val_acuracy"}})
    with pytest.raises(ConfigError, match=r"'val_acuracy' is not computed.*Did you mean 'val_accuracy'\?"):
        fit(Experiment.from_dict(config))


def test_state_round_trips() -> None:
    from plugins.early_stopping import EarlyStopping

    es = EarlyStopping(monitor="train_loss")
    es.load_state_dict({"direction": "min", "best": 1.0, "best_epoch": 1, "wait": 1, "best_weights": None})
    assert es.state_dict() == {"direction": "min", "best": 1.0, "best_epoch": 1, "wait": 1, "best_weights": None}
