"""The MLflow tracking callback, against a real MLflow store (sqlite in a temporary directory)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from framework import Experiment, FitResult, fit, hookimpl
from framework.errors import UserError

# MLflow's sqlite store triggers this SQLAlchemy 2.1 deprecation once per process (mlflow/store/tracking/
# sqlalchemy_store.py); pyproject ignores it, this keeps the tests passing under a command-line `-W error` too.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning")

EPOCHS = 5


def xor_experiment(**overrides: Any) -> Experiment:
    data: dict[str, Any] = {
        "name": "t",
        "data": {"name": "xor", "validation_split": 0},
        "model": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]},
        "loss": {"name": "mse"},
        "optimizer": {"name": "sgd", "lr": 0.5},
        "training": {"epochs": EPOCHS, "batch_size": 4},
    }
    return Experiment.from_dict({**data, **overrides})


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(tmp_path)  # artifacts go to ./mlruns
    import mlflow

    return mlflow.MlflowClient()


class RaiseAt:
    """A callback that raises `error` at the end of epoch `epoch`."""

    def __init__(self, epoch: int, error: BaseException) -> None:
        self.epoch, self.error = epoch, error

    @hookimpl
    def after_epoch(self, epoch: int) -> None:
        if epoch == self.epoch:
            raise self.error


class ThreadSpy:
    """Records the names of the running threads during training."""

    names: set[str]

    @hookimpl
    def after_epoch(self) -> None:
        self.names = {t.name for t in threading.enumerate()}


def artifact(client: Any, run_id: str, path: str, dst: Path) -> str:
    import mlflow

    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst))
    return Path(local).read_text(encoding="utf-8")


def test_a_run_is_logged_and_finished(client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spy = ThreadSpy()
    result = fit(xor_experiment(), callbacks=[spy], track=True)

    assert result.run_id is not None
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("t-sgd-lr0.5-")
    assert client.get_experiment(run.info.experiment_id).name == "t"

    params = run.data.params
    assert params["optimizer.lr"] == "0.5"
    assert params["model.layers.0.units"] == "4"
    assert params["training.epochs"] == str(EPOCHS)

    history = client.get_metric_history(result.run_id, "train_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(EPOCHS))
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        result.history.metrics["train_loss"]
    )
    assert [m.value for m in client.get_metric_history(result.run_id, "lr")] == [0.5] * EPOCHS
    layers = [f"layer_{i}.dense" for i in range(len(experiment_layers(result)))]
    families = {f"{f}/{layer}" for f in ("grad_norm", "weight_norm", "update_ratio") for layer in layers}
    assert set(run.data.metrics) == {*result.history.metrics, "lr", "system/epoch_seconds", *families}
    assert any(name.startswith("backprop-mlflow-") for name in spy.names)  # sent off the training thread

    tags = run.data.tags
    assert tags["backprop.seed"] == "0"
    assert tags["backprop.stop_reason"] == f"completed {EPOCHS} epochs"
    assert tags["backprop.version"] and tags["backprop.numpy_version"] and tags["backprop.python_version"]
    assert "tracking==" in tags["backprop.plugins"]
    assert tags["backprop.command"] == " ".join(sys.argv)
    assert "backprop.error" not in tags

    config = json.loads(artifact(client, result.run_id, "config.json", tmp_path / "dl"))
    assert result.experiment is not None
    assert config == result.experiment.to_dict()
    again = fit(Experiment.from_dict(config), track=False)  # the logged config runs the same experiment
    assert again.history.metrics == result.history.metrics

    csv = artifact(client, result.run_id, "history.csv", tmp_path / "dl")
    assert csv == result.history.to_csv()
    assert capsys.readouterr().out == ""  # no "View run ... at" or other printing


def test_tracking_section_names_experiment_and_run(client: Any) -> None:
    result = fit(xor_experiment(tracking={"experiment": "other", "run_name": "mine"}))

    run = client.get_run(result.run_id)
    assert run.info.run_name == "mine"
    assert client.get_experiment(run.info.experiment_id).name == "other"

    second = fit(xor_experiment(tracking={"experiment": "other", "run_name": "mine"}))
    assert client.get_run(second.run_id).info.experiment_id == run.info.experiment_id


def experiment_layers(result: Any) -> list[Any]:
    """The layers of the experiment's model, as configured (all dense here)."""
    return list(result.experiment.model.layers)


def test_a_callback_error_marks_the_run_failed(client: Any) -> None:
    with pytest.raises(RuntimeError, match="boom at epoch 2"):
        fit(xor_experiment(), callbacks=[RaiseAt(2, RuntimeError("boom at epoch 2"))], track=True)

    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["backprop.error"] == "RuntimeError: boom at epoch 2"
    assert run.data.tags["backprop.stop_reason"] == "error: RuntimeError"
    # The failing epoch's metrics were logged before the other callback raised.
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train_loss"))
    assert steps == [0, 1, 2]
    # No model for a failed run, but its curves, history and gradient flow up to the failure.
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [
        "config.json",
        "diagnostics",
        "history.csv",
        "training_curves.png",
    ]
    assert not client.get_run(run.info.run_id).outputs.model_outputs


def test_a_cancelled_sweep_trial_says_so_in_its_stop_reason(client: Any) -> None:
    from framework.sweep_trial import TrialCancelled

    with pytest.raises(TrialCancelled):
        fit(xor_experiment(), callbacks=[RaiseAt(1, TrialCancelled("the sweep was interrupted"))], track=True)
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.tags["backprop.stop_reason"] == "interrupted: the sweep was stopped"


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(143)], ids=["ctrl-c", "sigterm-exit"])
def test_an_interruption_marks_the_run_killed(client: Any, error: BaseException) -> None:
    with pytest.raises(type(error)):
        fit(xor_experiment(), callbacks=[RaiseAt(1, error)], track=True)

    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.info.status == "KILLED"
    assert "backprop.error" not in run.data.tags
    assert run.data.tags["backprop.stop_reason"] == f"interrupted: {type(error).__name__}"
    # The pictures of the weights it ended with (xor: two inputs that vary, so its decision surface too).
    pictures = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "diagnostics")}
    assert {"confusion_matrix.png", "decision_surface.png", "gradient_flow.png"} <= pictures


def test_the_run_id_is_set_before_other_callbacks_start(client: Any) -> None:
    seen: list[str | None] = []

    class Peek:
        @hookimpl
        def before_fit(self, trainer: Any) -> None:
            seen.append(trainer.run_id)

        @hookimpl
        def after_fit(self, result: FitResult) -> None:
            seen.append(client.get_run(result.run_id).info.status)  # not finished before the others

    result = fit(xor_experiment(), callbacks=[Peek()], track=True)
    assert seen == [result.run_id, "RUNNING"]


def test_an_unreachable_server_fails_fast(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(UserError, match="not reachable"):
        fit(xor_experiment(), track=True)


@pytest.mark.slow
def test_importing_the_plugin_does_not_import_mlflow() -> None:
    code = "import plugins.tracking, sys; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
