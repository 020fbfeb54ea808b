"""`tracking.log_every_n_steps`: the logged batch losses are each batch's own loss, at the right steps.

The oracle is a callback that computes `loss.value` of every batch in `after_batch`, on a second,
identically seeded run: training is deterministic, so both runs see the same batches and weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit, hookimpl
from tests.helpers import digits_config

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning")

BATCH = 50
TRAIN = 1437  # digits' 1797 samples, 20 % held out
PER_EPOCH = -(-TRAIN // BATCH)  # 29 batches, the last one smaller
# The model computes in float32; the oracle's mean is float32 arithmetic, the logged one sums in float64.
RTOL = 1e-6


def experiment(every: int, epochs: int = 2) -> Experiment:
    config = digits_config(name="batch-losses", tracking={"enabled": True, "log_every_n_steps": every})
    config["model"] = {"layers": [{"units": 16, "activation": "relu"}, {"units": 10}]}
    config["training"] = {"epochs": epochs, "batch_size": BATCH}
    return Experiment.from_dict(config)


class BatchLossOracle:
    """Each batch's loss, computed on the spot from what the batch produced."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.losses: dict[int, float] = {}
        self.stop_at = stop_at

    @hookimpl
    def after_batch(self, trainer: Any, step: int, outputs: Any, targets: Any) -> None:
        if step == self.stop_at:
            raise KeyboardInterrupt
        self.losses[step] = float(trainer.loss.value(outputs, targets))


def logged(run_id: str) -> dict[int, float]:
    import mlflow

    return {m.step: m.value for m in mlflow.MlflowClient().get_metric_history(run_id, "batch/loss")}


@pytest.mark.parametrize("every", [1, 7])
def test_logged_batch_losses_are_each_batchs_loss(store: str, every: int) -> None:
    oracle = BatchLossOracle()
    fit(experiment(every), callbacks=[oracle])  # untracked: the per-batch hook is the reference
    result = fit(experiment(every), track=True)  # tracked: the plain loop, losses computed after each epoch

    got = logged(result.run_id or "")
    assert sorted(got) == list(range(0, 2 * PER_EPOCH, every))
    np.testing.assert_allclose([got[s] for s in sorted(got)], [oracle.losses[s] for s in sorted(got)], rtol=RTOL)


def test_an_interrupted_epoch_logs_the_batches_it_completed(store: str) -> None:
    import mlflow

    stop_at = PER_EPOCH + 11  # the 12th batch of the second epoch
    oracle = BatchLossOracle(stop_at=stop_at)
    with pytest.raises(KeyboardInterrupt):
        fit(experiment(1, epochs=3), callbacks=[oracle], track=True)

    (run,) = mlflow.MlflowClient().search_runs([mlflow.get_experiment_by_name("batch-losses").experiment_id])
    assert run.info.status == "KILLED"
    got = logged(run.info.run_id)
    assert sorted(got) == list(range(stop_at))  # the batch that was cut short is not a batch loss
    np.testing.assert_allclose([got[s] for s in range(stop_at)], [oracle.losses[s] for s in range(stop_at)], rtol=RTOL)


def test_timestamps_rise_within_an_epoch(store: str) -> None:
    import mlflow

    result = fit(experiment(1), track=True)
    history = mlflow.MlflowClient().get_metric_history(result.run_id or "", "batch/loss")
    stamps = [m.timestamp for m in sorted(history, key=lambda m: m.step)]
    assert stamps == sorted(stamps)
    epoch_end = {m.step: m.timestamp for m in mlflow.MlflowClient().get_metric_history(result.run_id or "", "val_loss")}
    assert stamps[PER_EPOCH - 1] == epoch_end[0]  # the epoch's last batch ends with the epoch
