"""Checkpoints and exact resume: an interrupted run, resumed, ends bit-identical to the uninterrupted one."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, FitResult, fit, hookimpl
from framework.build import prepare_run
from framework.checkpoint import find_checkpoint, latest_in, sanitize
from framework.errors import UserError
from tests.helpers import digits_config, xor_config


def rich_config(epochs: int = 6, **training: Any) -> dict[str, Any]:
    """Everything with state: adam moments, dropout's generator, shuffling, early stopping, a plateau schedule."""
    return digits_config(
        name="resume test",
        optimizer={"name": "adamw", "lr": 0.003, "clip_norm": 1.0},
        model={"layers": [{"units": 16, "activation": "relu"}, {"type": "dropout", "rate": 0.3}, {"units": 10}]},
        training={"epochs": epochs, "batch_size": 64, "checkpoint_every": 1, "checkpoint_keep": 0, **training},
        callbacks={
            "early_stopping": {"patience": 3},
            "reduce_lr_on_plateau": {"patience": 0, "min_delta": 0.15, "factor": 0.5},
        },
    )


def assert_same_run(a: FitResult, b: FitResult) -> None:
    assert a.history.epochs == b.history.epochs
    assert a.history.metrics == b.history.metrics  # exact float equality, every epoch, every key
    assert a.stop_reason == b.stop_reason and a.restored_epoch == b.restored_epoch
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_a_run_resumed_from_any_epoch_ends_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    full = fit(Experiment.from_dict(rich_config()))
    assert len(set(full.history.metrics["lr"])) > 1  # the schedule did change the rate
    run_dir = next((tmp_path / "checkpoints" / "resume-test").iterdir())
    for epoch in (1, 3):
        resumed = fit(Experiment.from_dict(rich_config()), resume=run_dir / f"epoch-{epoch:04d}")
        assert_same_run(full, resumed)


def test_ctrl_c_writes_a_checkpoint_of_the_last_completed_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # Epochs here take milliseconds: snapshot after every one, as for epochs longer than the interval.
    monkeypatch.setattr("framework.trainer.SNAPSHOT_INTERVAL_S", 0.0)

    class CtrlC:
        @hookimpl
        def before_batch(self, epoch: int, batch: int) -> None:
            if epoch == 2 and batch == 5:  # in the middle of the third epoch
                raise KeyboardInterrupt

    config = rich_config(checkpoint_every=0)  # no periodic checkpoints: only the interrupt's
    prepared = prepare_run(Experiment.from_dict(config), [CtrlC()], track=False)
    with pytest.raises(KeyboardInterrupt) as info:
        prepared.trainer.fit()
    written = prepared.trainer.last_checkpoint
    assert written is not None and written.name == "epoch-0002"  # two epochs completed
    assert any("checkpoint of epoch 2 written" in note for note in info.value.__notes__)
    state = json.loads((written / "state.json").read_text())
    assert state["interrupted"] is True and state["epochs_completed"] == 2
    resumed = fit(Experiment.from_dict(config), resume=written)
    assert_same_run(fit(Experiment.from_dict(config)), resumed)


def test_checkpoints_hold_no_pickle_and_load_with_allow_pickle_false(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fit(Experiment.from_dict(rich_config(epochs=2)))
    checkpoint = find_checkpoint(str(next((tmp_path / "checkpoints" / "resume-test").iterdir())))
    assert checkpoint.name == "epoch-0002"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["SHA256SUMS", "model", "state.json", "state.npz"]
    for npz in [checkpoint / "state.npz", checkpoint / "model" / "weights.npz"]:
        with zipfile.ZipFile(npz) as archive:
            for name in archive.namelist():
                with archive.open(name) as member:
                    np.lib.format.read_array(member, allow_pickle=False)  # raises on an object array
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["config"]["optimizer"]["name"] == "adamw" and state["rng"]["bit_generator"] == "PCG64"


def test_default_location_and_lookup_by_run_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fit(Experiment.from_dict(rich_config(epochs=3, checkpoint_keep=2)))
    (run_dir,) = (tmp_path / "checkpoints" / sanitize("resume test")).iterdir()
    # The newest training.checkpoint_keep (2) are kept: one to resume from, one to fall back to.
    assert sorted(p.name for p in run_dir.iterdir()) == ["epoch-0002", "epoch-0003", "model"]
    assert latest_in(run_dir) == run_dir / "epoch-0003"
    assert find_checkpoint(run_dir.name) == Path("checkpoints") / "resume-test" / run_dir.name / "epoch-0003"
    with pytest.raises(UserError, match="no checkpoint 'nope'"):
        find_checkpoint("nope")


def test_resume_refuses_a_different_config_a_finished_run_and_too_few_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fit(Experiment.from_dict(rich_config(epochs=3)))
    run_dir = next((tmp_path / "checkpoints" / "resume-test").iterdir())
    other = rich_config(epochs=3)
    other["optimizer"]["lr"] = 0.1
    with pytest.raises(UserError, match=r"config differs.*optimizer.lr \(0.003 -> 0.1\)"):
        fit(Experiment.from_dict(other), resume=run_dir / "epoch-0002")
    with pytest.raises(UserError, match=r"training\.epochs = 1"):
        fit(Experiment.from_dict(rich_config(epochs=1)), resume=run_dir / "epoch-0002")
    # A run that died after its last epoch's checkpoint, before its end was recorded: resuming only ends it.
    ended = fit(Experiment.from_dict(rich_config(epochs=2)), resume=run_dir / "epoch-0002")
    assert ended.history.epochs == [0, 1] and ended.stop_reason == "completed 2 epochs"
    with pytest.raises(UserError, match=r"already ended \(completed 3 epochs\)"):
        fit(Experiment.from_dict(rich_config(epochs=3)), resume=run_dir / "epoch-0003")
    # A completed run may be trained for longer: the same as training that long in one go.
    longer = fit(Experiment.from_dict(rich_config(epochs=5)), resume=run_dir / "epoch-0003")
    assert longer.history.epochs[-1] >= 3


def test_a_nan_loss_stops_and_keeps_the_last_good_weights() -> None:
    class Poison:
        """Sets one weight to NaN in the third epoch, as a diverging step would."""

        def __init__(self) -> None:
            self.after_epoch1: list[np.ndarray] = []

        @hookimpl
        def after_step(self, trainer: Any, epoch: int, batch: int) -> None:
            if epoch == 2 and batch == 0:
                trainer.model.parameters()[0][0, 0] = np.nan

        @hookimpl
        def after_epoch(self, trainer: Any, epoch: int) -> None:
            if epoch == 1:
                self.after_epoch1 = trainer.model.get_weights()

    poison = Poison()
    config = xor_config(training={"epochs": 10, "batch_size": 2, "shuffle": False})
    with np.errstate(all="ignore"):
        result = fit(Experiment.from_dict(config), callbacks=[poison])
    assert result.stop_reason.startswith("train_loss is nan at epoch 3; kept the weights of epoch 2")
    assert result.restored_epoch == 1 and len(result.history) == 3
    for w, good in zip(result.model.get_weights(), poison.after_epoch1, strict=True):
        np.testing.assert_array_equal(w, good)
    assert result.final_metrics == {k: v[1] for k, v in result.history.metrics.items()}
