"""`plugins.tracking.local.models.log_pyfunc_model` against MLflow's own `Model.log`, on twin stores.

The same trained model is logged into a run of each twin: through MLflow (`artifacts.log_model`, what every
run did before) and directly. Every row and every file must be the same, ids and timestamps aside, and MLflow
must load the directly written model as its own (`runs:/<id>/model`) and predict exactly what backprop does.
"""

from __future__ import annotations

import filecmp
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from plugins.tracking import artifacts
from plugins.tracking.local.models import log_pyfunc_model, model_problem
from tests.helpers import digits_config
from tests.tracking.twins import Twins, dump, make_twins

TABLES = ["logged_models", "logged_model_tags", "logged_model_params", "logged_model_metrics", "inputs", "tags"]
TIMES = {
    "logged_models": ["creation_timestamp_ms", "last_updated_timestamp_ms"],
    "logged_model_metrics": ["metric_timestamp_ms"],
}
VOLATILE_MLMODEL = re.compile(r"^(utc_time_created|model_uuid|model_id|run_id|artifact_path):.*$", re.M)


@pytest.fixture(scope="module")
def trained() -> Any:
    return fit(Experiment.from_dict(digits_config(training={"epochs": 2, "batch_size": 64})), track=False)


@pytest.fixture
def twins(tmp_path: Path) -> Any:
    pair = make_twins(tmp_path)
    yield pair
    pair.close()


def log_both(twins: Twins, trained: Any) -> tuple[str, str]:
    """One run in each twin, the same model logged into each; their run ids (MLflow's, the local one's).

    `Model.log` finds its store through the fluent API: MLFLOW_TRACKING_URI, set to the MLflow twin meanwhile.
    """
    import mlflow

    trainer = type("T", (), {})()  # what model_files reads of a trainer
    trainer.model, trainer.history = trained.model, trained.history
    trainer.dataset = type("B", (), {"X": np.random.default_rng(0).normal(8, 4, size=(9, 64))})()
    stamps = {e: 1_700_000_000_000 + e for e in trained.history.epochs}
    mlflow_run = twins.client.create_run(twins.experiment_id).info.run_id
    mlflow.set_tracking_uri(f"sqlite:///{twins.mlflow_db}")
    try:
        artifacts.log_model(twins.client, trainer, mlflow_run, 1, stamps)
    finally:
        mlflow.set_tracking_uri(None)
    local_run, _ = twins.local.create_run(twins.local_experiment(), "local", {})
    with tempfile.TemporaryDirectory() as tmp:
        log_pyfunc_model(twins.local, local_run, **artifacts.model_files(trainer, Path(tmp), 1, stamps))
    return mlflow_run, local_run


def model_folder(root: Path) -> Path:
    (folder,) = (root / "models").glob("m-*/artifacts")
    return folder


def test_the_rows_are_mlflows(twins: Twins, trained: Any) -> None:
    log_both(twins, trained)
    tables = [t for t in TABLES if t != "tags"]
    ours, theirs = dump(twins.local_db, tables, TIMES), dump(twins.mlflow_db, tables, TIMES)
    local = {k: [{c: v for c, v in r.items() if c != "artifact_location"} for r in rows] for k, rows in ours.items()}
    mlflow = {k: [{c: v for c, v in r.items() if c != "artifact_location"} for r in rows] for k, rows in theirs.items()}
    assert local == mlflow
    assert len(local["logged_models"]) == 1 and local["logged_models"][0]["status"] == 2  # READY
    assert {r["metric_name"] for r in local["logged_model_metrics"]} >= {"train_loss", "val_loss", "val_accuracy"}
    assert [r["source_type"] for r in local["inputs"]] == ["RUN_OUTPUT"]
    # The run's own metric points of that epoch are stored once (MLflow's log_batch with the model's id).
    for db in (twins.local_db, twins.mlflow_db):
        assert len(dump(db, ["metrics"])["metrics"]) == len(local["logged_model_metrics"])


def test_the_files_are_mlflows(twins: Twins, trained: Any) -> None:
    log_both(twins, trained)
    ours, theirs = model_folder(twins.local_artifacts), model_folder(twins.mlflow_artifacts)
    ours_files = sorted(str(p.relative_to(ours)) for p in ours.rglob("*") if p.is_file())
    theirs_files = sorted(
        str(p.relative_to(theirs)) for p in theirs.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert ours_files == theirs_files
    for name in ours_files:
        if name == "MLmodel":
            a, b = ((f / name).read_text() for f in (ours, theirs))
            assert VOLATILE_MLMODEL.sub("", a) == VOLATILE_MLMODEL.sub("", b)
        else:
            assert filecmp.cmp(ours / name, theirs / name, shallow=False), name


def test_mlflow_loads_the_direct_model_and_it_predicts_what_backprop_predicts(twins: Twins, trained: Any) -> None:
    import mlflow

    _, local_run = log_both(twins, trained)
    client = twins.local_client()
    mlflow.set_tracking_uri(twins.local_uri)
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{local_run}/model")
    finally:
        mlflow.set_tracking_uri(None)
    X = np.random.default_rng(1).normal(8, 4, size=(20, 64)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(X), trained.model.predict(X))
    (logged,) = client.search_logged_models(experiment_ids=[twins.experiment_id])
    assert str(logged.status) == "READY" and logged.source_run_id == local_run
    assert {m.key for m in logged.metrics} >= {"train_loss", "val_accuracy"}


def test_settings_that_make_mlflow_write_otherwise_send_the_model_through_mlflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert model_problem(["mlflow==3.17.2", "numpy==2.4.6"]) is None
    assert "not a plain" in (model_problem(["numpy>=2"]) or "")
    monkeypatch.setenv("MLFLOW_LOCK_MODEL_DEPENDENCIES", "true")
    assert "locks" in (model_problem(["numpy==2.4.6"]) or "")
