"""The pictures' numbers in the terminal (issue 16.3): `evaluate` tables and `--plots`, `runs compare --plot`,
`runs show` listing the diagnostics; bad input refused with one message."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from framework.build import prepare_run
from framework.cli import app
from framework.evaluation import locate
from framework.pluginmanager import create_plugin_manager
from framework.registry import Registry
from tests.helpers import EXPERIMENTS

pytestmark = pytest.mark.slow


def trained(tmp_path: Path, experiment: str, *settings: str) -> Path:
    done = CliRunner().invoke(
        app,
        ["run", str(EXPERIMENTS / experiment), "--no-track", "--quiet", *(x for s in settings for x in ("--set", s))],
    )
    assert done.exit_code == 0, done.output
    (run_dir,) = (tmp_path / "checkpoints").glob("*/*")
    return run_dir


def validation_predictions(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The validation split's targets and the saved model's predictions, from the raw features."""
    found = locate(str(run_dir), Registry.from_host(create_plugin_manager()), run_dir.parent.parent)
    assert found.experiment is not None
    val = prepare_run(found.experiment, track=False).trainer.val
    assert val is not None
    model = found.model
    raw = val.X * model.preprocess.scale + model.preprocess.mean if model.preprocess is not None else val.X
    return np.asarray(val.y), np.asarray(model.predict(raw))


def table_rows(output: str, title: str) -> list[list[str]]:
    """The body rows of the rich table under `title`, as cell texts."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_evaluate_prints_the_confusion_matrix_and_writes_the_pictures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = trained(tmp_path, "iris.toml", "training.epochs=5", "training.checkpoint_every=5")
    result = CliRunner().invoke(app, ["evaluate", run_dir.name, "--plots", "pictures"])
    assert result.exit_code == 0, result.output
    y, predicted = validation_predictions(run_dir)
    expected = np.zeros((3, 3), dtype=int)
    guess = predicted.argmax(axis=1) if predicted.ndim == 2 else predicted  # the most probable class
    np.add.at(expected, (y.astype(int), guess.astype(int)), 1)  # counted here: row = true class, column = predicted
    rows = table_rows(result.output, "confusion matrix, validation data")
    shown = [[int(c) if c != "·" else 0 for c in row[1:]] for row in rows]
    assert shown == expected.tolist()
    per_class = table_rows(result.output, "per class, validation data")
    recall = expected.diagonal() / expected.sum(axis=1)
    assert [float(r[2]) for r in per_class] == pytest.approx(recall, abs=5e-5)
    written = {p.name for p in (tmp_path / "pictures").iterdir()}
    assert {"confusion_matrix.png", "classes.png", "classes.csv", "roc.png", "precision_recall.png"} <= written
    from PIL import Image

    image = np.asarray(Image.open(tmp_path / "pictures" / "confusion_matrix.png").convert("L"), dtype=float)
    assert image.shape[0] >= 400 and image.std() > 10


def test_evaluate_summarises_a_regressions_errors_in_target_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = trained(tmp_path, "house_prices.toml", "training.epochs=5", "training.checkpoint_every=5")
    result = CliRunner().invoke(app, ["evaluate", run_dir.name], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    y, predicted = validation_predictions(run_dir)
    residual = y.reshape(len(y), -1) - predicted.reshape(len(y), -1)
    expected = {
        "mean absolute error": np.abs(residual).mean(),
        "root mean squared error": np.sqrt((residual**2).mean()),
        "largest absolute error": np.abs(residual).max(),
        "R² (1 - SSE/SST)": 1 - (residual**2).sum() / ((y - y.mean()) ** 2).sum(),
    }
    shown = {row[0]: float(row[1]) for row in table_rows(result.output, "regression errors, validation data")}
    for name, value in expected.items():
        assert shown[name] == pytest.approx(value, rel=1e-5), name


def test_bad_plot_directories_and_metrics_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(app, ["evaluate", "no-such-run", "--plots", "a-file/pictures"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --plots a-file/pictures: cannot write pictures there")
    assert len(result.output.strip().splitlines()) == 1


def test_runs_compare_plots_a_metric_and_runs_show_lists_the_diagnostics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    ids = []
    for lr in ("0.5", "2.0"):
        done = CliRunner().invoke(app, ["run", str(EXPERIMENTS / "xor.toml"), "--set", f"optimizer.lr={lr}"])
        assert done.exit_code == 0, done.output
        ids.append(re.search(r"run id: (\w+)", done.output)[1])  # type: ignore[index]
    shown = CliRunner().invoke(app, ["runs", "show", ids[0]], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    listed = next(line for line in shown.output.splitlines() if line.startswith("diagnostics/"))
    step = (
        MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        .get_run(ids[0])
        .data.tags["backprop.best_epoch"]
    )
    best = next(line for line in shown.output.splitlines() if line.strip().startswith("best epoch"))
    assert best.split()[2:] == [str(int(step) + 1), "(step", f"{step})"]  # counted from 1, as the stop reason counts
    header = next(line for line in shown.output.splitlines() if "metric" in line and "curve" in line)
    assert "last epoch" in header and "final" not in header  # not the restored model's metrics: the last epoch's
    for name in ("confusion_matrix.png", "decision_surface.png", "gradient_flow.png", "roc.png"):
        assert name in listed
    out = tmp_path / "plots" / "loss.png"
    compared = CliRunner().invoke(app, ["runs", "compare", *ids, "--plot", str(out), "--metric", "train_loss"])
    assert compared.exit_code == 0, compared.output
    from PIL import Image

    image = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert image.shape == (480, 750) and image.std() > 10
    from framework.cli import runs_cmd

    drawn: dict[str, Any] = {}  # the series --plot draws are the named metric's, not the last table's key
    monkeypatch.setattr(runs_cmd, "overlay_png", lambda series, key, path: drawn.update(series=series, key=key))
    family = "grad_norm/layer_0.dense"
    compared = CliRunner().invoke(app, ["runs", "compare", *ids, "--plot", str(out), "--metric", family])
    assert compared.exit_code == 0, compared.output
    assert drawn["key"] == family and f"{family} of 2 runs" in compared.output
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = [[m.value for m in sorted(client.get_metric_history(i, family), key=lambda m: m.step)] for i in ids]
    assert list(drawn["series"].values()) == logged
    bad = CliRunner().invoke(app, ["runs", "compare", *ids, "--plot", str(out), "--metric", "val_loss"])
    assert bad.exit_code == 2
    assert bad.output.startswith(f"error: --metric val_loss: not logged by run {ids[0]}, {ids[1]}; every run has: ")
    assert "train_loss" in bad.output and len(bad.output.strip().splitlines()) == 1
    wrong = CliRunner().invoke(app, ["runs", "compare", *ids, "--plot", "loss.txt"])
    assert wrong.exit_code == 2 and "give a path ending in .png" in wrong.output
