"""Tracking against a real `mlflow server` (tests/tracking/conftest.py): runs, statuses, models, limits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import Field

from framework import Callback, Experiment, Params, fit, hookimpl
from framework.build import prepare_run
from tests.helpers import ROOT, digits_config
from tests.tracking.conftest import Server, start_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"),
    # mlflow.pyfunc asks loader modules for type hints; ours is numpy-only on purpose.
    pytest.mark.filterwarnings("ignore:.*type hint.*:UserWarning"),
]

BACKPROP = [sys.executable, "-m", "framework.cli"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def digits(name: str, **overrides: Any) -> Experiment:
    config = digits_config(name=name, tracking={"enabled": True})
    config["model"] = {"layers": [{"units": 16, "activation": "relu"}, {"units": 10}]}
    config["training"] = {"epochs": 3, "batch_size": 64}
    config.update(overrides)
    return Experiment.from_dict(config)


def client() -> Any:
    import mlflow

    return mlflow.MlflowClient()


def backprop(*args: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BACKPROP, *args], cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)


def run_id_of(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("run id: ")).removeprefix("run id: ").strip()


class RaiseAt:
    def __init__(self, epoch: int, error: BaseException) -> None:
        self.epoch, self.error = epoch, error

    @hookimpl
    def after_epoch(self, epoch: int) -> None:
        if epoch == self.epoch:
            raise self.error


def test_a_run_is_logged_to_the_server(server: Server, tmp_path: Path) -> None:
    name = unique("server")
    result = fit(digits(name, tracking={"enabled": True, "log_every_n_steps": 5}), track=True)

    run = server.rest(f"runs/get?run_id={result.run_id}")["run"]  # the REST API, as any client sees it
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["optimizer.lr"] == "0.05" and params["tracking.log_every_n_steps"] == "5"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["backprop.stop_reason"] == "completed 3 epochs"
    assert tags["backprop.best_epoch"] == str(int(np.argmin(result.history.metrics["val_loss"])))
    assert "numpy" not in tags["backprop.plugins"] and "tracking==" in tags["backprop.plugins"]
    assert "backprop.git_commit" not in tags  # a temporary directory is no git work tree

    mlflow_client = client()
    steps = [m.step for m in mlflow_client.get_metric_history(result.run_id, "batch/loss")]
    per_epoch = -(-1437 // 64)  # 1797 digits, 20 % held out
    assert sorted(steps) == list(range(0, 3 * per_epoch, 5))
    assert sorted(m.step for m in mlflow_client.get_metric_history(result.run_id, "val_loss")) == [0, 1, 2]
    paths = {a.path for a in mlflow_client.list_artifacts(result.run_id)}
    assert {"config.json", "history.csv", "training_curves.png"} <= paths

    (dataset_input,) = mlflow_client.get_run(result.run_id).inputs.dataset_inputs
    assert dataset_input.dataset.name == "digits" and dataset_input.dataset.digest
    assert dataset_input.dataset.source_type == "code"
    assert json.loads(dataset_input.dataset.source)["tags"]["backprop.dataset"] == "digits"
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"


def test_the_pyfunc_model_predicts_what_the_trainer_predicts(server: Server, tmp_path: Path) -> None:
    import mlflow.pyfunc
    from sklearn.datasets import load_digits

    result = fit(digits(unique("pyfunc")), track=True)
    X = load_digits().data
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{result.run_id}/model", dst_path=str(tmp_path))
    model = mlflow.pyfunc.load_model(local)

    predicted = model.predict(X.astype(np.float32))
    np.testing.assert_array_equal(predicted, result.model.predict(X))  # bit for bit: same formulas, same dtype
    assert predicted.dtype == np.float32 and predicted.shape == (len(X), 10)
    assert model.metadata.get_input_schema().inputs[0].type == np.dtype("float32")
    assert not list(Path(local).rglob("*.pkl")) and list(Path(local).rglob("weights.npz"))
    requirements = (Path(local) / "requirements.txt").read_text()
    assert f"numpy=={np.__version__}" in requirements and "cloudpickle" not in requirements

    # The same model through the command line, from a CSV file with a header.
    csv = tmp_path / "x.csv"
    csv.write_text("\n".join([",".join(f"f{i}" for i in range(64))] + [",".join(map(str, row)) for row in X[:3]]))
    done = backprop("predict", result.run_id, "--input", str(csv), cwd=tmp_path, env=os.environ)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.strip().splitlines()
    assert header.split(",") == [f"p_{c}" for c in range(10)]
    # The same three rows through the Python API: a BLAS kernel may sum a 3-row product in another order than a
    # 1797-row one (float32 logits of about 13 then differ in their last bits, tiny probabilities by ~1e-6).
    three = model.predict(X[:3].astype(np.float32))
    np.testing.assert_allclose(np.array([[float(v) for v in r.split(",")] for r in rows]), three, rtol=1e-7)


def test_the_logged_config_reproduces_the_run(server: Server, tmp_path: Path) -> None:
    import mlflow

    name = unique("repro")
    config = tmp_path / "exp.json"
    config.write_text(json.dumps(digits(name).to_dict()))
    first = backprop("run", str(config), "-q", cwd=tmp_path, env=os.environ)
    assert first.returncode == 0, first.stderr
    first_id = run_id_of(first.stdout)
    # The link it ends with: the run's page on the server's own UI (not `backprop ui`'s, though both are local).
    (link,) = [line for line in first.stdout.splitlines() if line.startswith("view it: ")]
    experiment_id = mlflow.MlflowClient().get_run(first_id).info.experiment_id
    page = f"{server.url}/#/experiments/{experiment_id}/runs/{first_id}?workflowType=machine_learning"
    assert link == f"view it: {page}", link
    # `backprop ui` on a server starts nothing: it names the server's pages (the run's, the newest experiment's charts).
    shown = backprop("ui", first_id, cwd=tmp_path, env=os.environ)
    assert shown.returncode == 0 and shown.stdout.split()[-1] == page, shown.stdout + shown.stderr
    charts = backprop("ui", cwd=tmp_path, env=os.environ)
    newest = max(mlflow.MlflowClient().search_experiments(), key=lambda e: e.last_update_time)
    chart_view = (
        f"{server.url}/#/experiments/{newest.experiment_id}/runs?workflowType=machine_learning&compareRunsMode=CHART"
    )
    assert charts.returncode == 0 and charts.stdout.split()[-1] == chart_view, charts.stdout + charts.stderr
    logged = mlflow.artifacts.download_artifacts(
        run_id=first_id, artifact_path="config.json", dst_path=str(tmp_path / "dl")
    )
    second = backprop("run", logged, "-q", cwd=tmp_path, env=os.environ)
    assert second.returncode == 0, second.stderr
    second_id = run_id_of(second.stdout)

    mlflow_client = client()
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        a = [(m.step, m.value) for m in mlflow_client.get_metric_history(first_id, key)]
        b = [(m.step, m.value) for m in mlflow_client.get_metric_history(second_id, key)]
        assert sorted(a) == sorted(b), key  # exactly the same numbers

    # ... and `backprop runs compare` shows a changed learning rate.
    third = backprop("run", logged, "-q", "--set", "optimizer.lr=0.2", cwd=tmp_path, env=os.environ)
    assert third.returncode == 0, third.stderr
    compared = backprop(
        "runs", "compare", first_id, run_id_of(third.stdout), cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}
    )
    assert compared.returncode == 0, compared.stderr
    lr_row = next(line for line in compared.stdout.splitlines() if "optimizer.lr" in line)
    assert "0.05" in lr_row and "0.2" in lr_row
    assert "training.epochs" not in compared.stdout  # only the params that differ
    assert "val_loss" in compared.stdout and any(c in compared.stdout for c in "▁▂▃▄▅▆▇█")

    listed = backprop("runs", "list", "--experiment", name, cwd=tmp_path, env={**os.environ, "COLUMNS": "250"})
    assert listed.returncode == 0, listed.stderr
    assert first_id in listed.stdout and second_id in listed.stdout
    shown = backprop("runs", "show", first_id, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "FINISHED" in shown.stdout and "training_curves.png" in shown.stdout
    missing = backprop("runs", "show", "0" * 32, cwd=tmp_path, env=os.environ)
    assert (
        missing.returncode == 2 and missing.stderr.startswith("error: MLflow run") and "Traceback" not in missing.stderr
    )


def test_an_exception_marks_the_run_failed(server: Server) -> None:
    name = unique("failed")
    with pytest.raises(RuntimeError, match="boom"):
        fit(digits(name), callbacks=[RaiseAt(1, RuntimeError("boom"))], track=True)
    (run,) = client().search_runs([client().get_experiment_by_name(name).experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["backprop.error"] == "RuntimeError: boom"


def wait_for_running(server: Server, name: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            experiment = server.rest(f"experiments/get-by-name?experiment_name={name}")["experiment"]
        except OSError:  # 404 until the run creates it
            time.sleep(0.2)
            continue
        runs = server.rest("runs/search", {"experiment_ids": [experiment["experiment_id"]]}).get("runs", [])
        if runs and runs[0]["info"]["status"] == "RUNNING":
            return str(runs[0]["info"]["run_id"])
        time.sleep(0.2)
    raise AssertionError("the run never showed up as RUNNING")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signalled_training_process_is_recorded_killed(server: Server, tmp_path: Path, signum: int) -> None:
    name = unique("killed")
    config = tmp_path / "exp.json"
    config.write_text(json.dumps(digits(name, training={"epochs": 100000, "batch_size": 64}).to_dict()))
    process = subprocess.Popen(
        [*BACKPROP, "run", str(config), "-q"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        run_id = wait_for_running(server, name)
        time.sleep(0.5)  # mid-epoch, some epochs in
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "recorded as KILLED" in stderr and "Traceback" not in stderr
    run = server.rest(f"runs/get?run_id={run_id}")["run"]
    assert run["info"]["status"] == "KILLED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["backprop.stop_reason"] == (
        "interrupted: KeyboardInterrupt" if signum == signal.SIGINT else "interrupted: Terminated"
    )


def test_an_unreachable_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from tests.tracking.conftest import free_port

    config = tmp_path / "exp.json"
    config.write_text(json.dumps(digits("unreachable").to_dict()))
    start = time.monotonic()
    done = backprop(
        "run", str(config), cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    )
    assert time.monotonic() - start < 30
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "is not reachable" in line and "--no-track" in line, done.stderr
    assert "Traceback" not in done.stderr and line == done.stderr.strip().splitlines()[-1]


def test_a_server_that_dies_mid_run_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    own = start_server(tmp_path / "server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own.url)
    monkeypatch.chdir(tmp_path)

    class KillServerAt:
        @hookimpl
        def after_epoch(self, epoch: int) -> None:
            if epoch == 1:
                own.kill()

    try:
        start = time.monotonic()
        result = fit(
            digits(unique("dies"), training={"epochs": 5, "batch_size": 64}), callbacks=[KillServerAt()], track=True
        )
        elapsed = time.monotonic() - start
    finally:
        own.stop()
    assert result.stop_reason == "completed 5 epochs" and len(result.history) == 5
    assert elapsed < 60
    where = tmp_path / "backprop-unsent" / str(result.run_id)
    assert str(where) in caplog.text
    rows = (where / "metrics.csv").read_text().splitlines()
    assert rows[0] == "key,value,timestamp_ms,step"
    assert {int(r.split(",")[3]) for r in rows[1:] if r.startswith("val_loss,")} >= {2, 3, 4}
    assert json.loads((where / "status.json").read_text())["status"] == "FINISHED"
    from framework.serialize import load_model

    X = np.random.default_rng(0).normal(size=(5, 64))
    np.testing.assert_array_equal(load_model(where / "model").predict(X), result.model.predict(X))


class NotesParams(Params):
    note: str = Field("", description="A long text.")
    extra: dict[str, int] = Field(default_factory=dict, description="Many values.")


class Notes(Callback):
    name: ClassVar[str] = "notes"
    Params: ClassVar[type[Params]] = NotesParams


class NotesPlugin:
    @hookimpl
    def register_callbacks(self) -> list[type[Callback]]:
        return [Notes]


def test_params_over_the_limits_are_cut_never_an_error(server: Server, tmp_path: Path) -> None:
    import mlflow

    long = "x" * 7000
    many = {f"k{i:03d}": i for i in range(150)}
    experiment = digits(unique("limits"), callbacks={"notes": {"note": long, "extra": many}})
    result = fit(experiment, track=True, plugins=[NotesPlugin()])

    run = client().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert len(params) > 150  # sent in batches of at most 100
    assert params["callbacks.notes.extra.k149"] == "149"
    assert len(params["callbacks.notes.note"]) == 6000 and params["callbacks.notes.note"].endswith("...")
    assert run.data.tags["backprop.truncated_params"] == "callbacks.notes.note"
    logged = mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="config.json", dst_path=str(tmp_path)
    )
    assert json.loads(Path(logged).read_text())["callbacks"]["notes"]["note"] == long  # whole in the artifact


def test_a_resumed_run_continues_its_mlflow_run(server: Server) -> None:
    name = unique("resume")
    first = fit(digits(name, training={"epochs": 2, "batch_size": 64}), track=True)
    run = prepare_run(digits(name, training={"epochs": 4, "batch_size": 64}), track=True)
    run.trainer.resume_run_id = first.run_id  # type: ignore[attr-defined]  (set by --resume)
    run.trainer.start_epoch = 2
    second = run.trainer.fit()

    assert second.run_id == first.run_id
    mlflow_client = client()
    assert len(mlflow_client.search_runs([mlflow_client.get_experiment_by_name(name).experiment_id])) == 1
    steps = sorted(m.step for m in mlflow_client.get_metric_history(first.run_id, "val_loss"))
    assert steps == [0, 1, 2, 3]
    finished = mlflow_client.get_run(first.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.tags["backprop.resume_changed_params"] == "training.epochs"


@pytest.mark.parametrize("off", [["--no-track"], ["--set", "tracking.enabled=false"]], ids=["flag", "config"])
def test_without_tracking_nothing_imports_mlflow(tmp_path: Path, off: list[str]) -> None:
    config = tmp_path / "exp.json"
    config.write_text(json.dumps(digits("off").to_dict()))
    code = (
        "import sys\nfrom framework.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "print('MLFLOW', 'mlflow' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", code, "run", str(config), "-q", *off],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "MLFLOW False" in done.stdout, done.stdout + done.stderr
    assert not (tmp_path / "mlflow.db").exists()
