"""What a run's page shows (issues 16 and 20): the description, the metric names, the gradient flow."""

from __future__ import annotations

import itertools
import math
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from framework import Experiment, fit
from framework.cli import app
from framework.mlflow_store import open_client
from plugins.tracking.description import NOTE
from plugins.tracking.gradients import GradientStats
from tests.helpers import EXPERIMENTS

METRIC_NAMES = re.compile(
    r"^((train|val)_[a-z0-9_]+|lr|batch/loss|system/[a-z_]+|(grad_norm|weight_norm|update_ratio)/layer_\d+\.[a-z0-9_-]+)$"
)
"""The naming scheme of docs/tracking.md: the headline metrics at the top level, the families under a prefix."""


def digits_file(tmp_path: Path) -> Path:
    text = (EXPERIMENTS / "digits.toml").read_text().replace("epochs = 30", "epochs = 4")
    path = tmp_path / "digits.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tracked(store: str, tmp_path: Path) -> tuple[Any, Any, Path]:
    path = digits_file(tmp_path)
    done = CliRunner().invoke(app, ["run", str(path), "--quiet", "--set", "optimizer.lr=0.03"])
    assert done.exit_code == 0, done.output
    client = open_client(store)
    (run,) = client.search_runs(experiment_ids=[client.get_experiment_by_name("digits").experiment_id])
    return client, run, path


def table(markdown: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header line starts with `header`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_every_number_of_the_description_is_what_the_run_logged(tracked: tuple[Any, Any, Path]) -> None:
    client, run, _ = tracked
    note = run.data.tags[NOTE]
    history = {
        key: sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step) for key in run.data.metrics
    }
    rows = table(note, "| metric |")
    assert {r[0] for r in rows} == {k for k in history if k.startswith(("train_", "val_"))}
    for name, final, epoch, best, best_epoch in rows:
        values = [m.value for m in history[name]]
        assert float(final) == pytest.approx(values[int(epoch) - 1], rel=1e-5), name
        chosen = max(values) if name.endswith("accuracy") else min(values)
        assert float(best) == pytest.approx(chosen, rel=1e-5), name
        assert values[int(best_epoch) - 1] == chosen, name
    layers = table(note, "| # | layer |")
    assert [r[1] for r in layers] == ["dense", "dense"] and [r[3] for r in layers] == ["relu", "identity"]
    assert [int(r[2]) for r in layers] == [int(run.data.params["model.layers.0.units"]), 10]
    assert sum(int(r[4].replace(",", "")) for r in layers) == 64 * 64 + 64 + 64 * 10 + 10
    assert f"lr = {run.data.params['optimizer.lr']}" in note
    assert run.data.tags["backprop.stop_reason"] in note
    # Each layer's parameter count from its units (the input width: digits' 64 pixels), and their total.
    units = [64, *(int(r[2]) for r in layers)]
    assert [int(r[4].replace(",", "")) for r in layers] == [a * b + b for a, b in itertools.pairwise(units)]
    total = sum(a * b + b for a, b in itertools.pairwise(units))
    assert f"**Model**: {total:,} parameters, 64 inputs." in note
    # The loss's and the optimiser's params, each the logged param of that name.
    for section in ("Loss", "Optimizer"):
        line = next(x for x in note.splitlines() if f"**{section}**:" in x)
        shown = dict(kv.split(" = ") for kv in line.split("(", 1)[1].rstrip(")").split(", "))
        prefix = section.lower() + "."
        assert shown and all(run.data.params[prefix + k] == v for k, v in shown.items()), (line, run.data.params)
    # The split sizes: scikit-learn's digits, a stratified 20 % held out (each class rounded on its own).
    from sklearn.datasets import load_digits

    counts = np.unique(load_digits().target, return_counts=True)[1]
    n_val = sum(round(c * float(run.data.params["data.validation_split"])) for c in counts)
    assert f"{len(load_digits().target) - n_val} training and {n_val} validation samples, 10 classes" in note


@pytest.mark.slow
def test_the_reproduce_command_gives_the_same_final_metrics(tracked: tuple[Any, Any, Path]) -> None:
    client, run, path = tracked
    note = run.data.tags[NOTE]
    command = re.search(r"```bash\n(.*?)\n```", note, re.S).group(1)  # type: ignore[union-attr]
    argv = shlex.split(command)
    assert argv[:3] == ["backprop", "run", str(path)] and "--set" in argv and "optimizer.lr=0.03" in argv
    done = CliRunner().invoke(app, [*argv[1:], "--quiet"])
    assert done.exit_code == 0, done.output
    runs = client.search_runs(experiment_ids=[run.info.experiment_id], order_by=["start_time DESC"])
    again = runs[0]
    assert again.info.run_id != run.info.run_id
    for key in run.data.metrics:
        if key.startswith(("train_", "val_")):
            assert again.data.metrics[key] == run.data.metrics[key], key  # bit for bit


@pytest.mark.slow
def test_every_metric_a_tracked_run_logs_follows_the_documented_scheme(store: str, tmp_path: Path) -> None:
    config = Experiment.from_file(EXPERIMENTS / "digits_modern.toml").to_dict()
    config["training"]["epochs"] = 2
    config["tracking"]["log_every_n_steps"] = 10
    result = fit(Experiment.from_dict(config), track=True)
    client = open_client(store)
    keys = set(client.get_run(result.run_id).data.metrics)
    assert keys and all(METRIC_NAMES.match(k) for k in keys), sorted(k for k in keys if not METRIC_NAMES.match(k))
    for family in ("grad_norm", "weight_norm", "update_ratio"):
        assert f"{family}/layer_0.dense" in keys and f"{family}/layer_1.batch_norm" in keys
    assert {"batch/loss", "system/epoch_seconds", "train_loss", "val_accuracy"} <= keys
    docs = (Path(__file__).resolve().parents[2] / "docs" / "tracking.md").read_text()
    for name in ("`grad_norm/<layer>`", "`weight_norm/<layer>`", "`update_ratio/<layer>`", "`batch/loss`", "`system/"):
        assert name in docs


def test_gradient_statistics_are_the_norms_of_the_weights_the_gradients_and_the_update() -> None:
    from framework.build import prepare_run
    from tests.helpers import digits_config

    run = prepare_run(Experiment.from_dict(digits_config()), track=False)
    model = run.trainer.model
    stats = GradientStats(model)
    start = [p.astype(np.float64) for p in model.parameters()]
    rng = np.random.default_rng(0)
    for p, g in zip(model.parameters(), model.gradients(), strict=True):
        p += rng.normal(0, 0.01, size=p.shape).astype(p.dtype)  # an "epoch" moved the weights
        g[...] = rng.normal(size=g.shape)
    values = stats.epoch_points()
    assert stats.names == ["layer_0.dense", "layer_1.dense"]
    for i, name in enumerate(stats.names):
        params = model.layers[i].parameters()
        grads = model.layers[i].gradients()
        before = start[2 * i : 2 * i + 2]
        w = math.sqrt(sum(float((p.astype(np.float64) ** 2).sum()) for p in params))
        g = math.sqrt(sum(float((q.astype(np.float64) ** 2).sum()) for q in grads))
        moved = math.sqrt(sum(float(((p - b) ** 2).sum()) for p, b in zip(params, before, strict=True)))
        assert values[f"weight_norm/{name}"] == pytest.approx(w, rel=1e-6)  # float32 sums
        assert values[f"grad_norm/{name}"] == pytest.approx(g, rel=1e-6)
        norm0 = math.sqrt(sum(float((b**2).sum()) for b in before))
        assert values[f"update_ratio/{name}"] == pytest.approx(moved / norm0, rel=1e-6)
    assert stats.epoch_points()[f"update_ratio/{stats.names[0]}"] == 0.0  # nothing moved since


@pytest.mark.slow
def test_gradient_stats_off_logs_none_and_no_picture(store: str) -> None:
    from tests.helpers import digits_config

    config = digits_config()
    config["tracking"] = {"enabled": True, "gradient_stats": False}
    result = fit(Experiment.from_dict(config), track=True)
    client = open_client(store)
    keys = set(client.get_run(result.run_id).data.metrics)
    assert not any("/layer_" in k for k in keys)
    assert "diagnostics/gradient_flow.png" not in {a.path for a in client.list_artifacts(result.run_id, "diagnostics")}
