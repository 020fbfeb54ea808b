"""What a tracked run records, checked against a list, whichever way it was written (issue 15).

A run on a local SQLite store that already exists is written directly (`plugins.tracking.local`), without
importing MLflow; `BACKPROP_TRACKING_CLIENT=mlflow` writes it through MLflow's client, as every run was before.
Both must leave everything a user finds in the store: the params, tags, metrics, artifacts, dataset input and
model listed here, and the same values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framework import Experiment, fit
from framework.mlflow_store import open_client
from plugins.tracking.stores import FORCE_MLFLOW
from tests.helpers import digits_config

REQUIRED_TAGS = {
    "mlflow.runName",
    "mlflow.user",
    "mlflow.source.name",
    "mlflow.source.type",
    "backprop.seed",
    "backprop.version",
    "backprop.numpy_version",
    "backprop.python_version",
    "backprop.plugins",
    "backprop.command",
    "backprop.stop_reason",
    "backprop.best_epoch",
}
REQUIRED_ARTIFACTS = {"config.json", "history.csv", "training_curves.png", "diagnostics"}
# The model of `experiment()` has two dense layers: each gets the three gradient-flow families (issue 16), and
# every run logs its epochs' wall time (issue 20's "system" section).
FAMILY_METRICS = {
    f"{family}/layer_{i}.dense" for family in ("grad_norm", "weight_norm", "update_ratio") for i in (0, 1)
} | {"system/epoch_seconds"}
MODEL_FILES = {
    "MLmodel",
    "conda.yaml",
    "python_env.yaml",
    "requirements.txt",
    "input_example.json",
    "serving_input_example.json",
    "code/backprop_pyfunc.py",
    "data/backprop_model/model.json",
    "data/backprop_model/weights.npz",
}


def experiment() -> Experiment:
    config = digits_config(training={"epochs": 3, "batch_size": 64})
    config["tracking"] = {"enabled": True, "experiment": "record"}
    return Experiment.from_dict(config)


def record(client: Any, run_id: str) -> dict[str, Any]:
    """Everything MLflow shows of a run, with what differs from run to run (ids, times) left out."""
    import mlflow

    run = client.get_run(run_id)
    tags = {k: v for k, v in run.data.tags.items() if k not in {"mlflow.runName", "backprop.heartbeat"}}  # a time
    if "mlflow.note.content" in tags:  # the description quotes the run's wall time, which differs run to run
        tags["mlflow.note.content"] = re.sub(r"; [0-9.]+ s\.", "; (wall time) s.", tags["mlflow.note.content"])
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    (model,) = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model"))
    files = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()}
    return {
        "status": run.info.status,
        "params": dict(run.data.params),
        "tags": tags,
        "metrics": {
            key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)] for key in run.data.metrics
        },
        "artifacts": {a.path for a in client.list_artifacts(run_id)},
        "dataset": (dataset.name, dataset.digest, dataset.source_type, dataset.source, dataset.schema, dataset.profile),
        "dataset_tags": {t.key: t.value for t in dataset_input.tags},
        "model": (model.name, str(model.status), model.model_type, {m.key: m.value for m in model.metrics or []}),
        "model_files": files,
        "model_predicts": mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(
            np.random.default_rng(0).normal(8, 4, size=(5, 64)).astype(np.float32)
        ),
    }


@pytest.fixture
def warm_store(store: str) -> Any:
    """The test's store with the experiment "record" in it (its first run goes through MLflow, which creates
    the schema and the experiment)."""
    fit(experiment(), track=True)
    return open_client(store)


@pytest.mark.slow
@pytest.mark.parametrize("way", ["direct", "mlflow"])
def test_a_tracked_run_records_everything_on_the_list(
    warm_store: Any, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if way == "mlflow":
        monkeypatch.setenv(FORCE_MLFLOW, "mlflow")
    result = fit(experiment(), track=True)
    assert result.run_id is not None
    found = record(warm_store, result.run_id)
    assert found["status"] == "FINISHED"
    assert set(found["params"]) == set(result.experiment.flat())  # type: ignore[union-attr]
    assert REQUIRED_TAGS - {"mlflow.runName"} <= set(found["tags"])
    assert found["tags"]["backprop.stop_reason"] == result.stop_reason
    assert set(found["metrics"]) == {*result.history.metrics, "lr", *FAMILY_METRICS}
    assert found["artifacts"] == REQUIRED_ARTIFACTS
    assert found["dataset"][0] == "digits" and found["dataset_tags"] == {"mlflow.data.context": "training"}
    assert found["model"][:3] == ("model", "READY", "backprop") and found["model"][3]
    assert found["model_files"] >= MODEL_FILES
    X = np.random.default_rng(0).normal(8, 4, size=(5, 64)).astype(np.float32)
    np.testing.assert_array_equal(found["model_predicts"], result.model.predict(X))


@pytest.mark.slow
def test_the_direct_store_records_what_mlflow_records(warm_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    direct = fit(experiment(), track=True)
    monkeypatch.setenv(FORCE_MLFLOW, "mlflow")
    through_mlflow = fit(experiment(), track=True)
    a, b = record(warm_store, str(direct.run_id)), record(warm_store, str(through_mlflow.run_id))
    np.testing.assert_array_equal(a.pop("model_predicts"), b.pop("model_predicts"))
    for key in a:
        if key == "metrics":  # the same numbers; timestamps and the epochs' measured wall times are not compared
            timed = {name for name in a[key] if name.startswith("system/")}
            assert {n: [s for s, _ in a[key][n]] for n in timed} == {n: [s for s, _ in b[key][n]] for n in timed}
            assert {n: v for n, v in a[key].items() if n not in timed} == {
                n: v for n, v in b[key].items() if n not in timed
            }
        else:
            assert a[key] == b[key], key


PROBE = """
import atexit, sys
atexit.register(lambda: print("IMPORTED:" + ",".join(m for m in ("mlflow", "sqlalchemy", "matplotlib.pyplot")
                                                     if m in sys.modules), file=sys.stderr))
sys.argv = ["backprop", *sys.argv[1:]]
from framework.cli import main
main()
"""


@pytest.mark.slow
def test_a_tracked_run_on_an_existing_store_imports_neither_mlflow_nor_sqlalchemy(
    warm_store: Any, tmp_path: Path
) -> None:
    import subprocess
    import sys

    (tmp_path / "exp.json").write_text(experiment().model_dump_json())
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "run", str(tmp_path / "exp.json"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "IMPORTED:\n" in done.stderr, done.stderr[-500:]
    runs = warm_store.search_runs(experiment_ids=[warm_store.get_experiment_by_name("record").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
