"""Pruning in a local sweep: hopeless trials stop early, end FINISHED and tagged, and the parent counts them."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import digits_config

pytestmark = pytest.mark.slow

BACKPROP = [sys.executable, "-m", "framework.cli"]
EPOCHS = 6
# Two good learning rates first (the pruner's start-up trials), then four that barely move in 6 epochs.
RATES = [0.2, 0.1, 1e-4, 5e-5, 2e-5, 1e-5]


def experiment(tmp_path: Path) -> Path:
    config = digits_config(training={"epochs": EPOCHS, "batch_size": 64}, optimizer={"name": "sgd", "lr": 0.05})
    config["model"]["layers"][0]["units"] = 16
    config["tracking"] = {"enabled": True, "experiment": "pruning"}
    config["sweep"] = {"prune": {"name": "median", "n_startup_trials": 2}}
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(config))
    return path


def history(client: Any, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_median_pruning_stops_the_hopeless_trials_by_the_median_rule(store: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    grid = "optimizer.lr=" + ",".join(str(r) for r in RATES)
    command = [*BACKPROP, "sweep", str(experiment(tmp_path)), "-q", "--grid", grid, "--workers", "1"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    client = MlflowClient(tracking_uri=store)
    parent_id = next(x.split(": ")[1] for x in done.stdout.splitlines() if x.startswith("parent run id:"))
    experiment_id = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    by_trial = sorted(runs, key=lambda r: int(r.data.tags["backprop.trial"]))
    assert [float(r.data.params["optimizer.lr"]) for r in by_trial] == RATES
    assert {r.info.status for r in runs} == {"FINISHED"}  # pruned trials end normally, only earlier

    completed: list[list[float]] = []  # val_loss per epoch of the trials Optuna saw complete, in order
    pruned, saved = 0, 0
    for run in by_trial:
        losses = history(client, run.info.run_id, "val_loss")
        if run.data.tags.get("backprop.pruned") == "true":
            pruned += 1
            stopped = len(losses)  # epochs trained
            assert stopped < EPOCHS
            assert run.data.tags["backprop.stop_reason"] == f"pruned at epoch {stopped}"
            # The median rule, from the logged numbers: the best loss so far is worse than the median of the
            # completed trials' losses at that epoch; at every earlier epoch it was not.
            step = stopped - 1
            assert min(losses[: step + 1]) > statistics.median(c[step] for c in completed)
            for earlier in range(step):
                assert min(losses[: earlier + 1]) <= statistics.median(c[earlier] for c in completed)
            saved += EPOCHS - stopped
        else:
            assert len(losses) == EPOCHS and "backprop.pruned" not in run.data.tags
            completed.append(losses)
    assert pruned >= 3  # the tiny learning rates
    parent = client.get_run(parent_id).data
    assert parent.tags["backprop.trials_pruned"] == str(pruned)
    assert parent.tags["backprop.epochs_saved"] == str(saved)
    assert float(parent.tags["backprop.seconds_saved"]) > 0
    # The best trial is one that trained to the end.
    best = client.get_run(parent.tags["backprop.best_run_id"])
    assert "backprop.pruned" not in best.data.tags
    assert f"{pruned} pruned by median" in done.stdout
