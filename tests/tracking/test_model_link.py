"""The logged model is linked to its run with the metrics of the epoch whose weights it holds."""

from __future__ import annotations

import math

import mlflow
import pytest

from framework import Experiment, fit
from tests.helpers import digits_config

pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*type hint.*:UserWarning"),
]


def test_the_model_carries_the_metrics_of_its_restored_epoch(store: str) -> None:
    # lr so high that the validation loss soon gets worse: early stopping puts an earlier epoch back.
    config = digits_config(
        name="model-link",
        optimizer={"name": "sgd", "lr": 3.0},
        training={"epochs": 12, "batch_size": 64},
        tracking={"enabled": True},
        callbacks={"early_stopping": {"patience": 2}},
    )
    result = fit(Experiment.from_dict(config), track=True)
    history = result.history
    val = history.metrics["val_loss"]
    best = min((v, e) for v, e in zip(val, history.epochs, strict=True) if math.isfinite(v))[1]
    assert result.restored_epoch == best and best != history.epochs[-1]  # the case worth testing

    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id or "")
    (output,) = run.outputs.model_outputs
    assert output.step == best
    model = client.get_logged_model(output.model_id)
    assert model.source_run_id == run.info.run_id
    linked = {m.key: m for m in model.metrics}
    row = history.epochs.index(best)
    assert set(linked) == {k for k, v in history.metrics.items() if math.isfinite(v[row])}
    for key, metric in linked.items():
        assert metric.step == best and metric.value == pytest.approx(history.metrics[key][row], rel=1e-12)
    # Linking adds no point to the run's own curves: one value per epoch, as logged during training.
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
    assert sorted(steps) == history.epochs
    assert mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model").run_id == run.info.run_id
