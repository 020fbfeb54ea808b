"""A sweep parent's page tells its story: the description ranks the children, with numbers that are theirs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import digits_config

pytestmark = pytest.mark.slow

BACKPROP = [sys.executable, "-m", "framework.cli"]
ROW = re.compile(r"^\| (\d+) \| \[(\d+)\]\((\S+)\) \| (.*) \|$")


def test_the_parent_description_ranks_the_children_with_their_own_numbers(store: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from PIL import Image

    config = digits_config(training={"epochs": 3, "batch_size": 64}, optimizer={"name": "sgd", "lr": 0.05})
    config["model"]["layers"][0]["units"] = 16
    config["tracking"] = {"enabled": True, "experiment": "parent-page"}
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(config))
    args = ["--grid", "optimizer.lr=0.01,0.1,0.3", "--grid", "training.batch_size=32,128", "--workers", "2"]
    done = subprocess.run([*BACKPROP, "sweep", str(path), "-q", *args], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    parent = next(x.split(": ")[1] for x in done.stdout.splitlines() if x.startswith("parent run id:"))
    client = MlflowClient(tracking_uri=store)
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    children = {
        r.info.run_id: r
        for r in client.search_runs(
            [client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'"
        )
    }
    header = next(line for line in note.splitlines() if line.startswith("| rank |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:2] == ["rank", "trial"] and "val_loss" in columns
    rows = [ROW.match(line) for line in note.splitlines()]
    rows = [m for m in rows if m is not None]
    assert len(rows) == 6
    losses = []
    for rank, match in enumerate(rows, start=1):
        assert int(match[1]) == rank
        run_id = match[3].split("/runs/")[1].split("?")[0]
        child = children[run_id]  # the link opens that child's page
        assert child.data.tags["backprop.trial"] == match[2]
        cells = dict(zip(columns[2:], [c.strip() for c in match[4].split("|")], strict=True))
        assert float(cells["optimizer.lr"]) == float(child.data.params["optimizer.lr"])
        assert int(cells["training.batch_size"]) == int(child.data.params["training.batch_size"])
        assert float(cells["val_loss"]) == pytest.approx(child.data.metrics["val_loss"], rel=1e-5)  # 6 digits shown
        assert int(cells["epochs"]) == len(client.get_metric_history(run_id, "val_loss"))
        losses.append(child.data.metrics["val_loss"])
    assert losses == sorted(losses)  # best first
    best = rows[0][3].split("/runs/")[1].split("?")[0]
    assert client.get_run(parent).data.tags["backprop.best_run_id"] == best
    # The command the page gives reruns the same sweep: same parent, nothing run twice.
    command = note.split("Run again (runs only what is missing): `")[1].split("`")[0]
    words = shlex.split(command)
    assert words[:2] == ["backprop", "sweep"]
    again = subprocess.run([*BACKPROP, *words[1:]], capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"parent run id: {parent}" in again.stdout and "6 finished (6 from an earlier run" in again.stdout
    # The picture: every swept key and the metric, a real image that is not blank.
    png = client.download_artifacts(parent, "diagnostics/parallel_coordinates.png", str(tmp_path))
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 700 and pixels.std() > 20
