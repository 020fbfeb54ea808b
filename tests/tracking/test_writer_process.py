"""The metric writer process of a local store (plugins/tracking/sink.py): used by long runs, loses nothing.

A run starts the writer at its first batch of metrics, after FLUSH_INTERVAL_S; the tests set that to 0 so
that a run of a few epochs uses it from its first epoch on.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from typing import Any

import mlflow
import pytest

from framework import Experiment, fit, hookimpl
from plugins.tracking import sender
from tests.helpers import digits_config

pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*type hint.*:UserWarning"),
]

STARTED = re.compile(r"metric writer process (\d+) started")


@pytest.fixture
def writer(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    monkeypatch.setattr(sender, "FLUSH_INTERVAL_S", 0.0)
    caplog.set_level(logging.DEBUG, logger="plugins.tracking")
    return caplog


def experiment(epochs: int, **tracking: Any) -> Experiment:
    config = digits_config(name="writer", tracking={"enabled": True, **tracking})
    config["model"] = {"layers": [{"units": 16, "activation": "relu"}, {"units": 10}]}
    config["training"] = {"epochs": epochs, "batch_size": 128}
    return Experiment.from_dict(config)


def writer_pids(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [int(m.group(1)) for r in caplog.records if (m := STARTED.search(r.getMessage()))]


def assert_everything_logged(run_id: str, history: Any, batch_steps: list[int] | None = None) -> None:
    client = mlflow.MlflowClient()
    for key, values in history.metrics.items():
        points = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert [step for step, _ in points] == history.epochs, key
        assert [value for _, value in points] == pytest.approx(values, rel=1e-12), key
    if batch_steps is not None:
        assert sorted(m.step for m in client.get_metric_history(run_id, "batch/loss")) == batch_steps


class WaitForWriter:
    """Holds the first epoch until the writer is ready (it takes seconds to import MLflow): a run of a few
    epochs would otherwise end first, and its points be sent by the training process."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    @hookimpl(trylast=True)
    def after_epoch(self, epoch: int) -> None:
        deadline = time.monotonic() + 120
        while epoch == 0 and not any("ready" in r.getMessage() for r in self.caplog.records):
            assert time.monotonic() < deadline, "the writer process never became ready"
            time.sleep(0.05)


def test_a_long_run_writes_through_the_writer_process(store: str, writer: pytest.LogCaptureFixture) -> None:
    result = fit(experiment(6, log_every_n_steps=1), callbacks=[WaitForWriter(writer)], track=True)

    answered = [int(m.group(1)) for r in writer.records if (m := re.search(r"answered (\d+) batches", r.getMessage()))]
    assert answered and answered[0] >= 5  # epochs 1-5 at least, written by the writer
    (pid,) = writer_pids(writer)
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):  # it has exited
        os.kill(pid, 0)
    assert mlflow.MlflowClient().get_run(result.run_id or "").info.status == "FINISHED"
    per_epoch = -(-1437 // 128)
    assert_everything_logged(result.run_id or "", result.history, list(range(6 * per_epoch)))


class KillWriter:
    """Kills the writer process as soon as it runs (it starts in the background): what it had not written
    must still arrive."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.killed: list[int] = []

    @hookimpl(trylast=True)
    def after_epoch(self, epoch: int) -> None:
        if not self.killed:
            for pid in writer_pids(self.caplog):
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)


def test_a_writer_that_dies_loses_nothing(store: str, writer: pytest.LogCaptureFixture) -> None:
    killer = KillWriter(writer)
    result = fit(experiment(30), callbacks=[killer], track=True)

    assert killer.killed, "the writer process never started"
    assert mlflow.MlflowClient().get_run(result.run_id or "").info.status == "FINISHED"
    assert_everything_logged(result.run_id or "", result.history)


class InterruptAt:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    @hookimpl(trylast=True)
    def after_epoch(self, epoch: int) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_ends_the_run_with_everything_written(store: str, writer: pytest.LogCaptureFixture) -> None:
    with pytest.raises(KeyboardInterrupt):
        fit(experiment(6), callbacks=[InterruptAt(3)], track=True)

    assert writer_pids(writer)
    (run,) = mlflow.MlflowClient().search_runs([mlflow.get_experiment_by_name("writer").experiment_id])
    assert run.info.status == "KILLED"
    steps = sorted(m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss"))
    assert steps == [0, 1, 2, 3]


@pytest.mark.parametrize("light", [True, False], ids=["sqlite writer", "mlflow writer"])
def test_points_the_store_refuses_come_back_with_the_error(store: str, light: bool) -> None:
    from plugins.tracking.sink import SinkProcess

    mlflow.MlflowClient().search_experiments()  # the store exists
    sink = SinkProcess(store, "no-such-run", store.removeprefix("sqlite:///") if light else None)
    batches = [[("loss", 0.5, 1000, 0)], [("loss", 0.25, 2000, 1), ("acc", 0.9, 2000, 1)]]
    for batch in batches:
        assert sink.write(batch)
    assert sink.ready.wait(timeout=120)  # closed before it is ready, it would be stopped unasked
    failed = sink.close()

    assert failed == [point for batch in batches for point in batch]  # the first refused, then not tried
    assert sink.error is not None and "no-such-run" in sink.error


def test_batches_wait_in_the_parent_until_the_writer_is_ready(store: str) -> None:
    """The child reads nothing while it imports MLflow: batches written to its pipe then would block the
    sender once the pipe is full (64 KiB), and a short run's end with it. They wait in the parent, and a
    run that ends first gets them all back to send itself."""
    from plugins.tracking.sink import SinkProcess

    mlflow.MlflowClient().search_experiments()  # the store exists
    sink = SinkProcess(store, "no-such-run")
    batches = [[(f"key{b}", 0.5, 1000 + i, i) for i in range(1000)] for b in range(20)]  # ~600 KiB pickled
    for batch in batches:
        assert sink.write(batch)
    assert not sink.ready.is_set(), "the writer became ready within milliseconds: the test proves nothing"
    assert sink.backlog() == 20_000
    assert sink.close() == [point for batch in batches for point in batch]
    assert sink.answered == 0


def test_a_batch_reaches_the_writer_as_the_points_it_stands_for() -> None:
    import io

    import numpy as np

    from plugins.tracking.writer import StepSeries, batches, encode, expand

    per_sample = np.array([1.0, 3.0, 2.0, 4.0, np.nan], dtype=np.float32)  # batches of 2: means 2, 3, nan
    series = StepSeries(per_sample, True, 2, 10, range(10, 13, 2), (1000, 1030), 3)  # steps 10 and 12
    first = [("val_loss", float("inf"), 999, 0), ("lr", 0.1, 999, 0)]
    second = [StepSeries(np.array([0.5, 0.25]), False, 4, 13, range(13, 15), (1030, 1050), 2)]
    stream = io.BytesIO(encode([*first, series]) + encode(second) + encode(first)[:-3])  # the last one cut short

    got = list(batches(stream))

    assert len(got) == 2
    assert got[0][:2] == first
    assert got[0][2] == ("batch/loss", 2.0, 1010, 10)  # its timestamp a third of the way through the epoch
    assert got[0][3][0::2] == ("batch/loss", 1030) and np.isnan(got[0][3][1]) and got[0][3][3] == 12
    assert got[1] == [("batch/loss", 0.5, 1040, 13), ("batch/loss", 0.25, 1050, 14)] == expand(second)
