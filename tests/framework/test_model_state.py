"""The model's state beyond its parameters (batch_norm's running statistics, gaussian_noise's generator) survives
everything that puts weights back: early stopping's best weights, the NaN guard, and resume after Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, FitResult, Trainer, fit, hookimpl
from framework.build import prepare_run
from framework.serialize import load_arrays
from plugins.layers.normalization import BatchNorm
from tests.helpers import digits_config

LAYERS = [
    {"units": 16, "activation": {"name": "leaky_relu", "negative_slope": 0.2}},
    {"type": "batch_norm", "momentum": 0.9},
    {"type": "gaussian_noise", "stddev": 0.2},
    {"units": 10},
]


def config(**overrides: Any) -> dict[str, Any]:
    return digits_config(name="model state", model={"layers": LAYERS}, **overrides)


class Recorder:
    """Copies of the model's weights (parameters, then buffers) and of its buffers alone after every epoch."""

    def __init__(self) -> None:
        self.weights: list[list[np.ndarray]] = []
        self.buffers: list[list[np.ndarray]] = []

    @hookimpl
    def after_epoch(self, trainer: Trainer) -> None:
        self.weights.append(trainer.model.get_weights())
        self.buffers.append([b.copy() for b in trainer.model.buffers()])


class ScriptedValLoss:
    def __init__(self, values: list[float]) -> None:
        self.values = values

    @hookimpl
    def after_validation(self, epoch: int, logs: dict[str, float]) -> None:
        logs["val_loss"] = self.values[epoch]


def assert_arrays_equal(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def test_the_model_carries_the_running_statistics_as_buffers_after_the_parameters() -> None:
    model = prepare_run(Experiment.from_dict(config()), track=False).trainer.model
    bn = model.layers[1]
    assert isinstance(bn, BatchNorm)
    assert [name for name in bn.buffers()] == ["running_mean", "running_var"]
    assert model.buffers()[0] is bn.running_mean and model.buffers()[1] is bn.running_var
    assert all(w is b for w, b in zip(model.weights()[-2:], model.buffers(), strict=True))


def test_early_stopping_restores_the_best_epochs_running_statistics() -> None:
    recorder = Recorder()
    experiment = Experiment.from_dict(
        config(
            training={"epochs": 4, "batch_size": 64},
            callbacks={"early_stopping": {"monitor": "val_loss", "patience": 10, "restore_best_weights": True}},
        )
    )
    result = fit(experiment, callbacks=[ScriptedValLoss([3.0, 1.0, 2.0, 2.5]), recorder])
    assert result.restored_epoch == 1
    assert not np.array_equal(recorder.buffers[1][0], recorder.buffers[3][0])  # they did move after epoch 1
    assert_arrays_equal([b.copy() for b in result.model.buffers()], recorder.buffers[1])
    assert_arrays_equal(result.model.get_weights(), recorder.weights[1])


def test_the_nan_guard_restores_the_running_statistics_of_the_last_good_epoch() -> None:
    class Poison:
        @hookimpl
        def before_epoch(self, trainer: Trainer, epoch: int) -> None:
            if epoch == 2:  # the first layer's weights go NaN: so do the batch statistics, and the running ones
                trainer.model.parameters()[0][...] = np.nan

    recorder = Recorder()
    result = fit(Experiment.from_dict(config(training={"epochs": 5, "batch_size": 64})), callbacks=[Poison(), recorder])
    assert result.stop_reason.startswith("train_loss is nan at epoch 3; kept the weights of epoch 2")
    assert not all(np.isfinite(b).all() for b in recorder.buffers[2])  # epoch 3 did poison them
    assert_arrays_equal([b.copy() for b in result.model.buffers()], recorder.buffers[1])
    assert_arrays_equal(result.model.get_weights(), recorder.weights[1])


def assert_same_run(a: FitResult, b: FitResult) -> None:
    assert a.history.epochs == b.history.epochs
    assert a.history.metrics == b.history.metrics  # exact float equality, every epoch, every key
    assert a.stop_reason == b.stop_reason and a.restored_epoch == b.restored_epoch
    assert_arrays_equal(a.model.get_weights(), b.model.get_weights())  # parameters and running statistics
    assert_arrays_equal(a.model.buffers(), b.model.buffers())


def test_a_run_resumed_after_ctrl_c_ends_bit_identical_running_statistics_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("framework.trainer.SNAPSHOT_INTERVAL_S", 0.0)  # epochs take milliseconds: snapshot each

    class CtrlC:
        @hookimpl
        def before_batch(self, epoch: int, batch: int) -> None:
            if epoch == 2 and batch == 5:  # in the middle of the third epoch
                raise KeyboardInterrupt

    settings = config(
        optimizer={"name": "adamw", "lr": 0.003},
        training={"epochs": 5, "batch_size": 64, "checkpoint_every": 0},  # only the interrupt's checkpoint
        callbacks={"early_stopping": {"patience": 3}},
    )
    prepared = prepare_run(Experiment.from_dict(settings), [CtrlC()], track=False)
    with pytest.raises(KeyboardInterrupt):
        prepared.trainer.fit()
    written = prepared.trainer.last_checkpoint
    assert written is not None and written.name == "epoch-0002"
    assert json.loads((written / "state.json").read_text())["interrupted"] is True
    saved = load_arrays(written / "model" / "weights.npz")
    assert not np.array_equal(saved["layer1.running_var"], np.ones(16, dtype=np.float32))  # trained statistics

    resumed = fit(Experiment.from_dict(settings), resume=written)
    full = fit(Experiment.from_dict(settings))
    assert_same_run(full, resumed)
